"""The apply executor on the real local runtime: order, outcomes, failures, retries, journal."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from conftest_local import Local
from localkit import create, delete, make_pool, plan_of

from reconciler.apply import Outcome, execute
from reconciler.apply_journal import Journal
from reconciler.errors import Diagnostic, PlanRefused
from reconciler.plan.plans import Action, Op
from reconciler.runtimes.local.runtime import LocalRuntime
from reconciler.states import Quota, ResourceKind, Tenant


def tenant(name: str, type_: str | None = "user") -> Action:
    return Action(Op.CREATE, ResourceKind.TENANT, name, after=Tenant(name, type_))  # type: ignore[arg-type]


def quota(name: str, engines: int | None) -> Action:
    return Action(Op.CREATE, ResourceKind.QUOTA, name, after=Quota(name, engines))  # type: ignore[arg-type]


def test_actions_run_in_order_with_outcomes(local: Local, tmp_path: Path) -> None:
    pool = make_pool(local.site)
    seen: list[str] = []
    result = execute(plan_of(tenant("alice"), quota("alice", 4), create(pool)), local.runtime,
                     journal_dir=tmp_path / "j", progress=lambda e: seen.append(e.action_id))
    assert seen == ["alice", "alice", pool.id]
    assert [e.outcome for e in result.entries] == [Outcome.CREATED] * 3
    assert result.ok and local.runtime.observe().pools == (pool,)
    assert json.loads(json.dumps(result.to_json()))["summary"]["created"] == 3


def test_a_refused_plan_touches_nothing(local: Local) -> None:
    plan = replace(plan_of(create(make_pool(local.site))), errors=(Diagnostic("too big"),))
    with pytest.raises(PlanRefused, match="too big"):
        execute(plan, local.runtime)
    assert not local.site.state.exists()


def test_a_failed_action_skips_its_dependents_and_the_rest_continue(local: Local) -> None:
    bob_pool = make_pool(local.site, caller="bob")
    alice_pool = make_pool(local.site, caller="alice")
    plan = plan_of(tenant("bob", None), create(bob_pool),  # NOT NULL type: the store refuses
                   tenant("alice"), create(alice_pool), quota("carol", None),
                   Action(Op.UPDATE, ResourceKind.QUOTA, "carol", after=Quota("carol", 3)))
    result = execute(plan, local.runtime)
    outcomes = [(e.action_id, e.outcome) for e in result.entries]
    assert outcomes == [("bob", Outcome.FAILED), (bob_pool.id, Outcome.SKIPPED),
                        ("alice", Outcome.CREATED), (alice_pool.id, Outcome.CREATED),
                        ("carol", Outcome.FAILED), ("carol", Outcome.SKIPPED)]
    assert "NOT NULL" in result.failed[0].message and result.failed[0].attempts == 1
    assert not result.ok
    assert local.runtime.observe().pools == (alice_pool,)


def test_a_busy_store_is_retried_with_backoff(local: Local) -> None:
    local.runtime.apply(tenant("alice"))  # the database exists
    impatient = LocalRuntime(local.site.state, busy_timeout=0.05)
    blocker = sqlite3.connect(local.site.state / "state.db", isolation_level=None,
                              check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: blocker.execute("COMMIT"))
    release.start()
    try:
        result = execute(plan_of(create(make_pool(local.site))), impatient)
    finally:
        release.join()
        blocker.close()
        impatient.close()
    [entry] = result.entries
    assert entry.outcome is Outcome.CREATED and entry.attempts > 1


def test_move_without_an_agent_defers_the_delete(local: Local) -> None:
    old = make_pool(local.site, commit="a" * 40)
    local.runtime.apply(create(old))
    new = make_pool(local.site, commit="b" * 40, version="1.1.0")
    result = execute(plan_of(create(new), delete(old, wait_for=new.id)), local.runtime,
                     wait_timeout=30)
    assert [e.outcome for e in result.entries] == [Outcome.CREATED, Outcome.DEFERRED]
    assert result.ok and len(result.deferred) == 1
    assert "old pool keeps serving" in result.deferred[0].message
    assert {p.id for p in local.runtime.observe().pools} == {old.id, new.id}


def test_journal_reports_an_interrupted_run_and_the_rerun_does_every_action(
        local: Local, tmp_path: Path) -> None:
    """The journal is a record, not a recovery log: the same plan run again does all its
    actions (idempotent: the one the interrupted run did changes nothing)."""
    pools = [make_pool(local.site, caller=c) for c in ("alice", "bob", "carol")]
    plan = plan_of(*(create(p) for p in pools), fingerprint="fp-1")
    local.runtime.apply(create(pools[0]))  # what the interrupted run did
    revision = local.runtime.observe().revision
    journal = Journal(tmp_path)
    journal.begin("fp-1", 3)  # as if a run died after its first action
    journal.started(f"0:WarmPool/{pools[0].id}:create")
    journal.finished(f"0:WarmPool/{pools[0].id}:create", "created")
    journal.close()
    with open(journal.path, "a") as handle:
        handle.write('{"event": "star')  # torn by the crash
    result = execute(plan, local.runtime, journal_dir=tmp_path)
    assert result.resumed and "stopped after 1 of 3 actions" in result.resumed
    assert [e.outcome for e in result.entries] == [Outcome.CREATED] * 3
    assert {p.id for p in local.runtime.observe().pools} == {p.id for p in pools}
    assert int(local.runtime.observe().revision) == int(revision) + 2  # no third write
    last = Journal(tmp_path).last_run()
    assert last is not None and last.finished and len(last.done) == 3
    again = execute(plan, local.runtime, journal_dir=tmp_path)
    assert again.resumed is None


def test_only_actions_that_changed_something_are_journaled_as_done(local: Local,
                                                                   tmp_path: Path) -> None:
    old = make_pool(local.site, commit="a" * 40)
    local.runtime.apply(create(old))
    new = make_pool(local.site, commit="b" * 40, version="1.1.0")
    plan = plan_of(create(new), delete(old, wait_for=new.id), tenant("bob", None),
                   create(make_pool(local.site, caller="bob")))
    result = execute(plan, local.runtime, journal_dir=tmp_path, wait_timeout=5)
    assert [e.outcome for e in result.entries] == [Outcome.CREATED, Outcome.DEFERRED,
                                                   Outcome.FAILED, Outcome.SKIPPED]
    events = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text()
              .splitlines()]
    assert [(e["event"], e.get("outcome")) for e in events if "action" in e] == [
        ("started", None), ("done", "created"), ("started", None), ("deferred", "deferred"),
        ("started", None), ("failed", "failed"), ("skipped", "skipped")]
    assert "no local agent is running" in events[4]["message"]
    run = Journal(tmp_path).last_run()
    assert run is not None and run.done == [f"0:WarmPool/{new.id}:create"]


class CountingRuntime(LocalRuntime):
    """The real local runtime, counting its observe() calls."""

    observed = 0

    def observe(self):  # type: ignore[no-untyped-def]
        self.observed += 1
        return super().observe()


def test_deferred_deletes_of_pools_outside_the_plan_observe_once_per_run(local: Local) -> None:
    """Three moves whose new pools exist already (an earlier apply made them): each delete
    needs the new pool's replica count from the live state; one observe serves them all."""
    deletes = []
    for caller in ("alice", "bob", "carol"):
        old = make_pool(local.site, caller=caller, commit="a" * 40)
        new = make_pool(local.site, caller=caller, commit="b" * 40, replicas=2)
        local.runtime.apply(create(old))
        local.runtime.apply(create(new))
        deletes.append(delete(old, wait_for=new.id))
    counting = CountingRuntime(local.site.state)
    try:
        result = execute(plan_of(*deletes), counting, wait_timeout=5)
    finally:
        counting.close()
    assert [e.outcome for e in result.entries] == [Outcome.DEFERRED] * 3
    assert all("0 of 2 ready" in e.message for e in result.entries)
    assert counting.observed == 1
