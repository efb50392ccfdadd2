"""Execute a Plan on any Runtime: plan order, make-before-break, retries, journal.

One result type for every action, as Flux's ChangeSet: a `ChangeEntry` with an
outcome (created, configured, deleted, deferred, failed, skipped, unchanged).

- The old side of a version move (a delete with `wait_for`) runs only once
  the new pool is ready (runtime.wait_ready, within the remaining
  --wait-timeout). If it is not, the delete is *deferred*: the old pool keeps
  serving, the result says so, and the next apply completes it. Not a failure.
- A move whose delete is `in_place` (its surge does not fit the nodes or the
  caller's quota; --allow-reduced-capacity) is a rolling handover instead:
  scale the old pool down by one, wait for one more ready replica of the new
  pool, and so on until the old pool is at 0 replicas or the new one is
  fully ready; then delete the old pool. Each step frees the slot the next
  new replica takes, so warm capacity never drops below replicas-1. Not
  ready in time: deferred as above, the old pool keeping the replicas not
  yet handed over (the next plan sees that smaller old side).
- A retryable RuntimeFault is retried with capped exponential backoff; a
  non-retryable one fails that action, skips the actions that depend on it
  (the same object, a delete waiting for that pool, the pools and quota of a
  tenant that failed) and lets the rest continue.
- The journal (apply_journal) records the run and reports an interrupted
  earlier one; it never changes what this run does: the plan was made from
  the observed state, so what an interrupted run completed is not in it.
- A runtime that cannot do an action yet raises Pending: the action is
  deferred (not retried, not a failure). A runtime whose apply() returns a
  note did nothing because nothing needed doing (a delete found the object
  already gone): the action is unchanged, with the note as its message.
- A runtime that stops taking requests raises Unavailable (its circuit
  breaker opened): that action fails and every action not yet started is
  skipped ("not attempted"), so the result says what was done and what not.
- Concurrency: a runtime may set `concurrency` > 1 (Kubernetes); then the
  actions of one ordering stage (plan/order.py's phase: namespaces, quotas,
  each kind of pool change, ...) run up to that many at a time, stage after
  stage, so every create still precedes the deletes that wait for it. A
  hand-over (an in-place move) runs alone. Without it (the local runtime)
  actions run one by one in plan order, as they always did.
- execute() works on any Runtime; the audit history (LocalRuntime.record_apply)
  is the caller's business.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from reconciler.apply_journal import Journal, now
from reconciler.backoff import Backoff
from reconciler.errors import PlanRefused, ReconcilerError, RuntimeFault
from reconciler.plan.order import phase
from reconciler.plan.plans import Action, Change, Op, Plan
from reconciler.runtimes.base import NotReady, Pending, Runtime, Unavailable
from reconciler.states import LiveState, Quota, ResourceKind, WarmPool

FIRST_DELAY = 0.2
MAX_DELAY = 5.0


class Outcome(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    DELETED = "deleted"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"


DONE_OUTCOME = {Op.CREATE: Outcome.CREATED, Op.DELETE: Outcome.DELETED}


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    action_id: str
    kind: str
    op: str
    outcome: Outcome
    message: str = ""
    attempts: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.action_id, "kind": self.kind, "op": self.op,
                "outcome": str(self.outcome), "message": self.message,
                "attempts": self.attempts, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True, slots=True)
class ApplyResult:
    entries: tuple[ChangeEntry, ...]
    fingerprint: str
    started_at: str
    finished_at: str
    resumed: str | None = None  # what the journal said about an interrupted earlier run
    warnings: tuple[str, ...] = ()  # e.g. a damaged journal, set aside

    @property
    def failed(self) -> tuple[ChangeEntry, ...]:
        return tuple(e for e in self.entries if e.outcome is Outcome.FAILED)

    @property
    def deferred(self) -> tuple[ChangeEntry, ...]:
        return tuple(e for e in self.entries if e.outcome is Outcome.DEFERRED)

    @property
    def ok(self) -> bool:
        """No action failed. Deferred deletes are not failures: the old pool keeps serving."""
        return not self.failed

    @property
    def counts(self) -> dict[str, int]:
        counts = {str(outcome): 0 for outcome in Outcome}
        for entry in self.entries:
            counts[str(entry.outcome)] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "startedAt": self.started_at,
                "finishedAt": self.finished_at, "ok": self.ok, "resumed": self.resumed,
                "warnings": list(self.warnings), "summary": self.counts,
                "entries": [e.to_json() for e in self.entries]}


def action_key(index: int, action: Action) -> str:
    """An action's identity within one plan (the journal's key)."""
    return f"{index}:{action.kind}/{action.id}:{action.op}"


def execute(plan: Plan, runtime: Runtime, *, wait_timeout: float = 300.0,
            journal_dir: Path | None = None,
            progress: Callable[[ChangeEntry], None] | None = None,
            max_attempts: int = 5,
            notice: Callable[[str], None] | None = None) -> ApplyResult:
    """Run the plan's actions in order; see the module docstring for the rules.
    Raises PlanRefused for a plan that is not applyable (nothing is touched)."""
    if not plan.applyable:
        reasons = "; ".join(str(d) for d in plan.errors[:3])
        raise PlanRefused(f"the plan is refused and was not applied: {reasons}")
    started, deadline = now(), time.monotonic() + wait_timeout
    journal = Journal(journal_dir) if journal_dir is not None else None
    resumed = _resume(journal, plan)
    run = _Run(plan, runtime, deadline, max_attempts, notice, journal, progress)
    workers = getattr(runtime, "concurrency", 1)
    workers = workers if isinstance(workers, int) and workers > 1 else 1
    try:
        if workers == 1:
            for index, action in enumerate(plan.actions):
                run.finish(index, action, run.attempt(index, action))
        else:
            for stage in _stages(plan.actions):
                run.stage(stage, workers)
        warnings = tuple(journal.warnings) if journal else ()
        result = ApplyResult(tuple(run.entries), plan.fingerprint, started, now(), resumed,
                             warnings)
        if journal:
            journal.event("end", ok=result.ok, summary=result.counts)
    finally:
        if journal:
            journal.close()
    return result


Indexed = list[tuple[int, Action]]


def _stages(actions: tuple[Action, ...]) -> Iterator[Indexed]:
    """Runs of consecutive actions of one ordering phase; a hand-over on its own."""
    stage: Indexed = []
    for index, action in enumerate(actions):
        if stage and (_alone(action) or _alone(stage[-1][1]) or
                      phase(action) != phase(stage[-1][1])):
            yield stage
            stage = []
        stage.append((index, action))
    if stage:
        yield stage


def _alone(action: Action) -> bool:
    return action.op is Op.DELETE and bool(action.wait_for) and action.in_place


class _Run:
    """One execution: what failed, whether the runtime stopped, the entries so far."""

    def __init__(self, plan: Plan, runtime: Runtime, deadline: float, max_attempts: int,
                 notice: Callable[[str], None] | None, journal: Journal | None,
                 progress: Callable[[ChangeEntry], None] | None) -> None:
        self.plan, self.runtime, self.deadline = plan, runtime, deadline
        self.max_attempts, self.notice = max_attempts, notice
        self.journal, self.progress = journal, progress
        self.live = _LiveOnce(runtime)
        self.failed: list[Action] = []
        self.entries: list[ChangeEntry] = []
        self.stopped: str | None = None  # why the runtime stopped taking requests
        self._lock = threading.Lock()

    def attempt(self, index: int, action: Action) -> ChangeEntry:
        """Run one action (any thread); its entry."""
        blocker = _blocked_by(action, self.failed)
        if blocker is not None:
            return _entry(action, Outcome.SKIPPED, f"skipped: {blocker.kind} {blocker.id} failed")
        if self.stopped is not None:
            return _entry(action, Outcome.SKIPPED, f"not attempted: {self.stopped}")
        if self.journal:
            with self._lock:
                self.journal.started(action_key(index, action))
        try:
            return _run_one(self.plan, action, self.runtime, self.deadline, self.max_attempts,
                            self.notice, self.live)
        except Unavailable as exc:
            self.stopped = str(exc)
            return _entry(action, Outcome.FAILED, str(exc))

    def finish(self, index: int, action: Action, entry: ChangeEntry, *,
               keep: bool = True) -> None:
        """Record an action's entry (the main thread); `keep`: append it to the entries
        now (a stage appends its entries in plan order at its end)."""
        if entry.outcome is Outcome.FAILED:
            self.failed.append(action)
        if self.journal:
            with self._lock:
                self.journal.finished(action_key(index, action), str(entry.outcome),
                                      entry.message)
        if keep:
            self.entries.append(entry)
        if self.progress is not None:
            self.progress(entry)

    def stage(self, stage: Indexed, workers: int) -> None:
        """The actions of one stage, up to `workers` at a time; entries in plan order."""
        if len(stage) == 1:
            index, action = stage[0]
            self.finish(index, action, self.attempt(index, action))
            return
        done: dict[int, ChangeEntry] = {}
        with ThreadPoolExecutor(max_workers=min(workers, len(stage))) as pool:
            futures = {pool.submit(self.attempt, index, action): (index, action)
                       for index, action in stage}
            for future in as_completed(futures):
                index, action = futures[future]
                done[index] = future.result()
                self.finish(index, action, done[index], keep=False)
        self.entries += [done[index] for index, _ in stage]


def _resume(journal: Journal | None, plan: Plan) -> str | None:
    """Start this run's journal; what it said about an interrupted earlier run, if any."""
    if journal is None:
        return None
    last = journal.last_run(unfinished=True)
    message = None
    if last is not None and not last.finished:
        message = (f"resuming: the last apply of plan {last.fingerprint[:12]} (started "
                   f"{last.started_at}) stopped after {len(last.done)} of {last.total} actions")
    journal.begin(plan.fingerprint, len(plan.actions))
    return message


class _LiveOnce:
    """The live state, observed at most once per run, for the pools the plan leaves alone."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._live: LiveState | None = None
        self._lock = threading.Lock()

    def replicas(self, pool_id: str) -> int | None:
        with self._lock:
            if self._live is None:
                self._live = self.runtime.observe()
        pool = self._live.pool(pool_id)
        return pool.replicas if pool is not None else None


def _run_one(plan: Plan, action: Action, runtime: Runtime, deadline: float,
             max_attempts: int, notice: Callable[[str], None] | None,
             live: _LiveOnce) -> ChangeEntry:
    began = time.monotonic()
    if action.op is Op.DELETE and action.wait_for and action.in_place:
        return _handover(plan, action, runtime, deadline, max_attempts, notice, live)
    if action.op is Op.DELETE and action.wait_for:
        want = _desired_replicas(plan, live, action.wait_for)
        if notice is not None:
            notice(f"waiting for pool {action.wait_for} to have {want} ready replica(s) "
                   f"before deleting {action.id}")
        try:
            runtime.wait_ready(action.wait_for, want, max(deadline - time.monotonic(), 0.0))
        except NotReady as exc:
            return _entry(action, Outcome.DEFERRED, f"delete deferred: {exc}",
                          seconds=time.monotonic() - began)
        except Unavailable:
            raise
        except ReconcilerError as exc:
            return _entry(action, Outcome.FAILED, str(exc), seconds=time.monotonic() - began)
    return _apply_and_report(runtime, action, max_attempts, began,
                             DONE_OUTCOME.get(action.op, Outcome.CONFIGURED), action.reason)


def _apply_and_report(runtime: Runtime, action: Action, max_attempts: int, began: float,
                      outcome: Outcome, message: str) -> ChangeEntry:
    """Apply with retries; the entry: `outcome` with `message`, failed with the error,
    deferred (Pending), or unchanged with the runtime's note."""
    attempts, error, note = _apply_with_retries(runtime, action, max_attempts)
    seconds = time.monotonic() - began
    if isinstance(error, Pending):
        return _entry(action, Outcome.DEFERRED, str(error), attempts, seconds)
    if error is not None:
        return _entry(action, Outcome.FAILED, str(error), attempts, seconds)
    if note:
        return _entry(action, Outcome.UNCHANGED, note, attempts, seconds)
    return _entry(action, outcome, message, attempts, seconds)


def _handover(plan: Plan, action: Action, runtime: Runtime, deadline: float,
              max_attempts: int, notice: Callable[[str], None] | None,
              live: _LiveOnce) -> ChangeEntry:
    """Hand the old pool of a move over to the new one a replica at a time, then delete it."""
    began = time.monotonic()
    old, new_id = action.before, action.wait_for
    assert isinstance(old, WarmPool) and new_id
    want = _desired_replicas(plan, live, new_id)
    handed = 0
    try:
        while old.replicas > 0 and handed < want:
            old = _scale_down_one(runtime, action, old, max_attempts)
            handed += 1
            if notice is not None:
                notice(f"handing over pool {action.id} to {new_id}: {handed} of "
                       f"{old.replicas + handed} replicas")
            runtime.wait_ready(new_id, min(want, handed), max(deadline - time.monotonic(), 0.0))
    except NotReady as exc:
        return _entry(action, Outcome.DEFERRED,
                      f"delete deferred after handing over {handed} of {old.replicas + handed} "
                      f"replicas ({old.replicas} left in the old pool): {exc}",
                      seconds=time.monotonic() - began)
    except Unavailable:
        raise
    except ReconcilerError as exc:
        return _entry(action, Outcome.FAILED, str(exc), seconds=time.monotonic() - began)
    return _apply_and_report(runtime, action, max_attempts, began, Outcome.DELETED,
                             f"{action.reason}; handed over {handed} replica(s) one at a time")


def _scale_down_one(runtime: Runtime, move: Action, pool: WarmPool,
                    max_attempts: int) -> WarmPool:
    """Scale `pool` (the old side of `move`) down by one replica; the pool as it is now."""
    smaller = dataclasses.replace(pool, replicas=pool.replicas - 1)
    scale = Action(Op.SCALE, ResourceKind.WARM_POOL, pool.id, before=pool, after=smaller,
                   reason=f"handing over to {move.wait_for}",
                   changes=(Change("replicas", pool.replicas, smaller.replicas),),
                   in_place=True)
    _, error, _ = _apply_with_retries(runtime, scale, max_attempts)
    if error is not None:
        raise error
    return smaller


def _apply_with_retries(runtime: Runtime, action: Action, max_attempts: int
                        ) -> tuple[int, ReconcilerError | None, str | None]:
    """(attempts, the error that ended them or None, the runtime's note). Unavailable is
    raised: the run stops."""
    delays = Backoff(FIRST_DELAY, MAX_DELAY)
    for attempt in range(1, max(max_attempts, 1) + 1):
        try:
            note = runtime.apply(action)
            return attempt, None, note if isinstance(note, str) else None
        except Unavailable:
            raise
        except RuntimeFault as exc:
            if not exc.retryable or attempt >= max_attempts:
                return attempt, exc, None
        except ReconcilerError as exc:
            return attempt, exc, None
        time.sleep(delays.next())
    return max_attempts, None, None  # pragma: no cover - the loop always returns


def _desired_replicas(plan: Plan, live: _LiveOnce, pool_id: str) -> int:
    """How many ready replicas make a moved-to pool 'ready': what the plan wants of it,
    else (the plan leaves that pool alone) what the live state has."""
    for action in plan.actions:
        if action.id == pool_id and isinstance(action.after, WarmPool):
            return action.after.replicas
    replicas = live.replicas(pool_id)
    return replicas if replicas is not None else 1


def _blocked_by(action: Action, failed: list[Action]) -> Action | None:
    """The failed action this one depends on, if any."""
    obj = action.obj
    owner = obj.caller if isinstance(obj, WarmPool) else (
        obj.account if isinstance(obj, Quota) else None)
    for bad in failed:
        if bad.kind == action.kind and bad.id == action.id:
            return bad
        if action.wait_for and bad.kind is ResourceKind.WARM_POOL and bad.id == action.wait_for:
            return bad
        if bad.kind is ResourceKind.TENANT and bad.op is not Op.DELETE and owner == bad.id:
            return bad
    return None


def _entry(action: Action, outcome: Outcome, message: str, attempts: int = 0,
           seconds: float = 0.0) -> ChangeEntry:
    return ChangeEntry(action.id, str(action.kind), str(action.op), outcome, message,
                       attempts, seconds)
