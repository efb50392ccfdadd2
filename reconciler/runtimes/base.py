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
    "Pending",
    "PoolStatus",
    "ReplicaStatus",
    "Runtime",
    "RuntimeFault",
    "Unavailable",
]


class NotReady(RuntimeFault):
    """wait_ready timed out: the pool did not reach the wanted ready count."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class Pending(RuntimeFault):
    """apply() could not do the action yet and did nothing (e.g. its namespace is still
    being deleted): the executor reports it deferred, without retrying; a later pass
    does it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class Unavailable(RuntimeFault):
    """The runtime stopped taking requests (a circuit breaker opened after too many
    failures in a row): the executor stops, and reports what it did and did not do."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@runtime_checkable
class Runtime(Protocol):
    name: str

    def observe(self) -> LiveState:
        """One consistent read of everything the reconciler owns, with a revision token."""
        ...

    def nodes(self) -> list[Node]:
        """Allocatable cpu, memory, gpu and pods per node."""
        ...

    def apply(self, action: Action) -> str | None:
        """Carry out one action. Idempotent. Raises RuntimeFault (retryable or not),
        Pending when it cannot happen yet. Returns None when it did what the action says,
        or a note when nothing needed doing (e.g. "already gone": a delete found nothing
        to delete), which the executor reports as unchanged.

        A runtime may set `concurrency` (an int, default 1): how many actions of one
        ordering stage the executor may run at once on it (runtimes/local runs one)."""
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
