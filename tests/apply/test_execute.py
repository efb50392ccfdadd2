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


def test_journal_reports_an_interrupted_run_and_skips_its_completed_actions(
        local: Local, tmp_path: Path) -> None:
    pools = [make_pool(local.site, caller=c) for c in ("alice", "bob", "carol")]
    plan = plan_of(*(create(p) for p in pools), fingerprint="fp-1")
    journal = Journal(tmp_path)
    journal.begin("fp-1", 3, [])  # as if a run died after its first action
    journal.event("started", action=f"0:WarmPool/{pools[0].id}:create")
    journal.event("done", action=f"0:WarmPool/{pools[0].id}:create")
    with open(journal.path, "a") as handle:
        handle.write('{"event": "star')  # torn by the crash
    result = execute(plan, local.runtime, journal_dir=tmp_path)
    assert result.resumed and "stopped after 1 of 3 actions" in result.resumed
    assert [e.outcome for e in result.entries] == [Outcome.UNCHANGED, Outcome.CREATED,
                                                   Outcome.CREATED]
    last = Journal(tmp_path).last_run()
    assert last is not None and last.finished
    again = execute(plan, local.runtime, journal_dir=tmp_path)
    assert again.resumed is None
