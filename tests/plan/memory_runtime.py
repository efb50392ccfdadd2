"""A tiny in-memory implementation of the Runtime protocol, for engine tests.

Not a mock of any library: it holds a LiveState and nodes, applies actions to
them the way a runtime's store would, and bumps its revision on every change.
"""

from __future__ import annotations

from collections.abc import Sequence

from plan.builders import apply_plan
from reconciler.plan.plans import Action, Plan
from reconciler.states import LiveState, Node


class MemoryRuntime:
    name = "memory"

    def __init__(self, live: LiveState | None = None, nodes: Sequence[Node] = ()) -> None:
        self.live = live or LiveState(revision="0")
        self._nodes = list(nodes)
        self.closed = False

    def observe(self) -> LiveState:
        return self.live

    def nodes(self) -> list[Node]:
        return list(self._nodes)

    def apply(self, action: Action) -> None:
        revision = str(int(self.live.revision) + 1)
        self.live = apply_plan(self.live, Plan("memory", "", (action,)), revision=revision)

    def wait_ready(self, pool_id: str, replicas: int, timeout: float) -> None:
        return None

    def close(self) -> None:
        self.closed = True
