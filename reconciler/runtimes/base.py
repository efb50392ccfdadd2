"""The Runtime protocol. A new runtime is one new folder implementing it."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from reconciler.errors import RuntimeFault
from reconciler.plan.plans import Action
from reconciler.states import LiveState, Node, PoolStatus, ReplicaStatus

__all__ = [
    "Action",
    "FullRuntime",
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


@runtime_checkable
class FullRuntime(Runtime, Protocol):
    """A Runtime plus the bookkeeping `apply`, `status` and the daemon use. Every runtime
    `reconciler.runtimes.open_runtime` opens is one; where a runtime has nothing to keep
    (Kubernetes: the cluster is the record), these are no-ops. Kept apart from Runtime so
    a runtime that only reconciles (a test's in-memory one) still is a Runtime."""

    def report(self) -> dict[str, Any]:
        """What `status` shows beyond the pools (nodes; locally also agent, roots and the
        last apply)."""
        ...

    def record_apply(self, result: dict[str, Any], source_commit: str | None) -> None:
        """Keep an audit row of one apply (ApplyResult.to_json() and the source commit)."""
        ...

    def save_roots(self) -> None:
        """Record where this config's data and code live, for whoever starts workers."""
        ...
