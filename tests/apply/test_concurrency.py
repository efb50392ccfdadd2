"""The executor with a runtime that takes several actions at once (Kubernetes sets
`concurrency`): stage by stage, bounded, entries in plan order; and the runtime's
signals: Pending (deferred), a note (unchanged), Unavailable (stop, report the rest).

The runtime is plan.memory_runtime's in-memory store, slowed down so that actions overlap,
and recording what ran when."""

from __future__ import annotations

import threading
import time

from plan.builders import big_nodes, desired_of, live_of, pool
from plan.memory_runtime import MemoryRuntime

from reconciler.apply import Outcome, execute
from reconciler.plan.order import phase
from reconciler.plan.planner import make_plan
from reconciler.plan.plans import Action, Op, Plan
from reconciler.runtimes.base import Pending, Unavailable
from reconciler.states import LiveState


class Overlapping(MemoryRuntime):
    """Holds each action a moment; records the most actions in flight and each action's
    (start, end) in order."""

    def __init__(self, live: LiveState | None = None, concurrency: int = 4) -> None:
        super().__init__(live, big_nodes())
        self.concurrency = concurrency
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.spans: dict[str, tuple[float, float]] = {}
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.notes: dict[str, str] = {}

    def apply(self, action: Action) -> str | None:  # type: ignore[override]
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.calls.append(action.id)
        began = time.monotonic()
        try:
            time.sleep(0.02)
            if action.id in self.fail:
                raise self.fail[action.id]
            with self.lock:
                super().apply(action)
            return self.notes.get(action.id)
        finally:
            with self.lock:
                self.running -= 1
                self.spans[f"{action.op}:{action.id}"] = (began, time.monotonic())


def moving_plan() -> tuple[Plan, LiveState]:
    """Ten new pools for new callers, and alice's pool moving to a new version."""
    old = pool("alice", version="1.1.0")
    live = live_of(desired_of(old), revision="1")
    desired = desired_of(pool("alice", version="1.2.0"),
                         *(pool(f"user{i}") for i in range(10)))
    plan = make_plan(desired, live, big_nodes(), runtime="memory")
    assert plan.applyable
    return plan, live


def test_each_stage_runs_concurrently_and_bounded_and_stages_stay_in_order() -> None:
    plan, live = moving_plan()
    runtime = Overlapping(live, concurrency=4)
    seen: list[str] = []
    result = execute(plan, runtime, wait_timeout=1, progress=lambda e: seen.append(e.action_id))
    assert result.ok and len(result.entries) == len(plan.actions)
    assert 1 < runtime.most <= 4
    # entries in plan order; progress as actions finish
    assert [e.action_id for e in result.entries] == [a.id for a in plan.actions]
    assert sorted(seen) == sorted(a.id for a in plan.actions)
    # no action of a later stage starts before every action of an earlier one has ended
    spans = [(phase(a), runtime.spans[f"{a.op}:{a.id}"]) for a in plan.actions]
    for stage, (start, _) in spans:
        assert all(end <= start for other, (_, end) in spans if other < stage)
    move = next(a for a in plan.actions if a.op is Op.DELETE)
    create = next(a for a in plan.actions if a.op is Op.CREATE and a.id == move.wait_for)
    assert runtime.spans[f"create:{create.id}"][1] <= runtime.spans[f"delete:{move.id}"][0]


def test_a_runtime_without_concurrency_runs_one_action_at_a_time() -> None:
    plan, live = moving_plan()
    runtime = Overlapping(live, concurrency=4)
    del runtime.concurrency
    result = execute(plan, runtime, wait_timeout=1)
    assert result.ok and runtime.most == 1
    assert runtime.calls == [a.id for a in plan.actions]


def test_pending_is_deferred_and_a_note_is_unchanged_neither_retried() -> None:
    plan, live = moving_plan()
    runtime = Overlapping(live)
    pending = plan.actions[3].id
    gone = next(a.id for a in plan.actions if a.op is Op.DELETE)
    runtime.fail[pending] = Pending("namespace x is being deleted")
    runtime.notes[gone] = "already gone: there was nothing to delete"
    result = execute(plan, runtime, wait_timeout=1)
    entries = {e.action_id: e for e in result.entries}
    assert entries[pending].outcome is Outcome.DEFERRED and entries[pending].attempts == 1
    assert entries[gone].outcome is Outcome.UNCHANGED
    assert entries[gone].message.startswith("already gone")
    assert result.ok and result.counts["deleted"] == 0


def test_unavailable_stops_the_run_and_reports_what_was_not_attempted() -> None:
    plan, live = moving_plan()
    for concurrency in (1, 4):
        runtime = Overlapping(live, concurrency=concurrency)
        if concurrency == 1:
            del runtime.concurrency
        first_pool = next(a.id for a in plan.actions if a.op is Op.CREATE
                          and str(a.kind) == "WarmPool")
        runtime.fail[first_pool] = Unavailable("stopped: the API server failed 20 requests")
        result = execute(plan, runtime, wait_timeout=1)
        assert not result.ok
        outcomes = {e.action_id: e for e in result.entries}
        assert outcomes[first_pool].outcome is Outcome.FAILED
        assert all(e.outcome is Outcome.CREATED for e in result.entries
                   if str(e.kind) == "Tenant")  # done before the outage
        skipped = [e.message for e in result.entries if e.outcome is Outcome.SKIPPED]
        assert any(m.startswith("not attempted: stopped") for m in skipped)
        assert all(m.startswith(("not attempted: stopped", f"skipped: WarmPool {first_pool}"))
                   for m in skipped)
        assert len(result.entries) == len(plan.actions)
        assert runtime.calls.count(first_pool) == 1  # not retried
