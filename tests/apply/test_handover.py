"""A move at the caller's quota: the rolling handover, with real workers and a real quota."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest_local import Local
from localkit import make_pool, wait_for, workers_of

from reconciler.apply import Outcome, execute
from reconciler.plan import make_plan
from reconciler.plan.plans import Action, Op, Plan
from reconciler.states import DesiredState, Quota, ResourceKind, Tenant, WarmPool

pytestmark = pytest.mark.slow

QUOTA = Quota("alice", 2, None, "alice-capacity")
OLD, NEW = "a" * 40, "b" * 40


@dataclass
class Samples:
    """alice's replicas of acme/adder, every ~20 ms: (ready, live = starting|warming|ready)."""

    counts: list[tuple[int, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, db_path: Path) -> None:
        db = sqlite3.connect(db_path)
        query = ("SELECT SUM(r.state = 'ready'), SUM(r.state IN ('starting', 'warming', "
                 "'ready')) FROM replicas r JOIN pools p ON p.id = r.pool_id "
                 "WHERE p.id LIKE 'alice.acme.adder.%'")
        while not self.stop.is_set():
            with db:
                ready, live = db.execute(query).fetchone()
            self.counts.append((ready or 0, live or 0))
            self.stop.wait(0.02)
        db.close()


def start_at_quota(local: Local) -> WarmPool:
    """alice: maxEngines 2, and a pool of 2 replicas of acme/adder 1.0.0."""
    old = make_pool(local.site, commit=OLD, replicas=2)
    for action in (Action(Op.CREATE, ResourceKind.TENANT, "alice", after=Tenant("alice")),
                   Action(Op.CREATE, ResourceKind.QUOTA, "alice", after=QUOTA),
                   Action(Op.CREATE, ResourceKind.WARM_POOL, old.id, after=old)):
        local.runtime.apply(action)
    return old


def move_plan(local: Local, new: WarmPool, *, allow: bool) -> Plan:
    desired = DesiredState((Tenant("alice"),), (QUOTA,), (new,))
    return make_plan(desired, local.runtime.observe(), local.runtime.nodes(), runtime="local",
                     allow_reduced_capacity=allow)


def test_a_move_at_the_quota_hands_over_one_replica_at_a_time(local: Local) -> None:
    old = start_at_quota(local)
    local.agent()
    local.runtime.wait_ready(old.id, 2, timeout=15)
    new = make_pool(local.site, commit=NEW, version="1.1.0", replicas=2)
    assert "over its maxEngines 2" in move_plan(local, new, allow=False).errors[0].message
    plan = move_plan(local, new, allow=True)
    assert [(a.op, a.in_place) for a in plan.actions] == [(Op.CREATE, True), (Op.DELETE, True)]
    samples, notices = Samples(), []
    sampler = threading.Thread(target=samples.run, args=(local.site.state / "state.db",))
    sampler.start()
    try:
        result = execute(plan, local.runtime, wait_timeout=20, notice=notices.append)
        wait_for(lambda: local.runtime.observe().ready(new.id) == 2, message="new pool ready")
    finally:
        samples.stop.set()
        sampler.join()
    assert [e.outcome for e in result.entries] == [Outcome.CREATED, Outcome.DELETED]
    assert notices == [f"handing over pool {old.id} to {new.id}: 1 of 2 replicas",
                       f"handing over pool {old.id} to {new.id}: 2 of 2 replicas"]
    assert "handed over 2 replica(s) one at a time" in result.entries[1].message
    live = local.runtime.observe()
    assert [(p.id, p.replicas) for p in live.pools] == [(new.id, 2)]
    assert len(samples.counts) > 10
    print(f"\nhandover: {len(samples.counts)} samples, min ready "
          f"{min(r for r, _ in samples.counts)}, max live {max(n for _, n in samples.counts)}")
    assert min(ready for ready, _ in samples.counts) >= 1, "warm capacity fell below replicas-1"
    assert max(live for _, live in samples.counts) <= QUOTA.max_engines, "over the quota"
    wait_for(lambda: len(workers_of(local.site.state)) == 2, message="old workers gone")


def test_without_an_agent_the_handover_is_deferred_then_completes(local: Local) -> None:
    old = start_at_quota(local)
    new = make_pool(local.site, commit=NEW, version="1.1.0", replicas=2)
    first = execute(move_plan(local, new, allow=True), local.runtime, wait_timeout=20)
    assert [e.outcome for e in first.entries] == [Outcome.CREATED, Outcome.DEFERRED]
    assert first.deferred[0].message.startswith(
        "delete deferred after handing over 1 of 2 replicas (1 left in the old pool): pool "
        f"{new.id}: 0 of 1 ready; no local agent is running")
    assert {p.id: p.replicas for p in local.runtime.observe().pools} == {old.id: 1, new.id: 2}
    local.agent()
    again = move_plan(local, new, allow=True)  # the old side is smaller now: 2 + 1 > 2
    assert [(a.op, a.id, a.in_place) for a in again.actions] == [(Op.DELETE, old.id, True)]
    second = execute(again, local.runtime, wait_timeout=20)
    assert [e.outcome for e in second.entries] == [Outcome.DELETED], second.entries
    wait_for(lambda: local.runtime.observe().ready(new.id) == 2, message="new pool ready")
    assert [p.id for p in local.runtime.observe().pools] == [new.id]
    assert move_plan(local, new, allow=False).empty
