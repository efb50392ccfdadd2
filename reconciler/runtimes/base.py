"""The Runtime protocol. A new runtime is one new folder implementing it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from reconciler.errors import RuntimeFault
from reconciler.plan.plans import Action
from reconciler.states import LiveState, Node, PoolStatus, ReplicaStatus

__all__ = [
    "Action",
    "LiveState",
    "Node",
    "NotReady",
    "PoolStatus",
    "ReplicaStatus",
    "Runtime",
    "RuntimeFault",
]


class NotReady(RuntimeFault):
    """wait_ready timed out: the pool did not reach the wanted ready count."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@runtime_checkable
class Runtime(Protocol):
    name: str

    def observe(self) -> LiveState:
        """One consistent read of everything the reconciler owns, with a revision token."""
        ...

    def nodes(self) -> list[Node]:
        """Allocatable cpu, memory, gpu and pods per node."""
        ...

    def apply(self, action: Action) -> None:
        """Carry out one action. Idempotent. Raises RuntimeFault (retryable or not)."""
        ...

    def wait_ready(self, pool_id: str, replicas: int, timeout: float) -> None:
        """Block until `replicas` replicas of the pool are ready; NotReady on timeout."""
        ...

    def close(self) -> None:
        """Release connections and locks."""
        ...
