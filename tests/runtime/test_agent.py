"""The agent with real worker processes: start, serve, replace, roll, refuse, adopt."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from dataclasses import replace

import pytest
from conftest_local import Local
from localkit import (
    change,
    create,
    delete,
    invoke,
    make_pool,
    standalone_agent,
    wait_for,
    workers_of,
)

from reconciler.plan.plans import Action, Op
from reconciler.runtimes.base import NotReady
from reconciler.runtimes.local.agent import Agent
from reconciler.runtimes.local.runtime import LocalRuntime
from reconciler.states import Quota, ResourceKind, WarmPool

pytestmark = pytest.mark.slow


def ready_pids(local: Local, pool_id: str) -> list[str]:
    status = local.runtime.observe().status.get(pool_id)
    return sorted(r.id for r in status.replicas if r.state == "ready") if status else []



def warm(local: Local, pool: WarmPool) -> None:
    """Store the pool, start the agent, and wait until every replica is ready."""
    local.runtime.apply(create(pool))
    local.agent()
    local.runtime.wait_ready(pool.id, pool.replicas, timeout=15)

def test_pool_becomes_ready_and_serves(local: Local) -> None:
    pool = make_pool(local.site, replicas=2)
    warm(local, pool)
    live = local.runtime.observe()
    assert live.ready(pool.id) == 2
    assert all(r.model_digest == pool.model_digest for r in live.status[pool.id].replicas)
    ports = local.runtime.ready_endpoints(pool.id)
    assert invoke(ports[0], {"values": [1, 2, 3]})["output"]["sum"] == 6


def test_killed_worker_is_replaced(local: Local) -> None:
    pool = make_pool(local.site, replicas=1)
    warm(local, pool)
    [victim] = ready_pids(local, pool.id)
    os.kill(int(victim), signal.SIGKILL)
    wait_for(lambda: ready_pids(local, pool.id) not in ([], [victim]), message="replacement")
    [replacement] = ready_pids(local, pool.id)
    assert replacement != victim
    port = local.runtime.ready_endpoints(pool.id)[0]
    assert invoke(port, {"values": [2]})["output"]["pid"] == int(replacement)


def ready_count_sampler(local: Local, stop: threading.Event, samples: list[int],
                        every: float = 0.01) -> None:
    """Every few ms: how many replicas serve (ready, any spec) and answer on their port."""
    db = sqlite3.connect(local.site.state / "state.db")
    while not stop.is_set():
        samples.append(db.execute("SELECT COUNT(*) FROM replicas WHERE state = 'ready'")
                       .fetchone()[0])
        stop.wait(every)
    db.close()


def reload_sampled(local: Local, pool: WarmPool, every: float = 0.05
                   ) -> tuple[list[int], set[str]]:
    """Warm the pool, reload it with a new model file and digest while sampling the
    ready count; (the samples, the pids that served before the reload)."""
    warm(local, pool)
    old_pids = set(ready_pids(local, pool.id))
    new_digest = local.site.write_model("m2.json", factor=10)
    reloaded = replace(pool, model_path="data://acme/models/m2.json", model_digest=new_digest)
    samples: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=ready_count_sampler, args=(local, stop, samples, every))
    sampler.start()
    try:
        local.runtime.apply(change(Op.RELOAD, pool, reloaded))
        local.runtime.wait_ready(pool.id, pool.replicas, timeout=20)
        wait_for(lambda: len(local.runtime.observe().status[pool.id].replicas) == pool.replicas,
                 message="old replicas gone")
    finally:
        stop.set()
        sampler.join()
    return samples, old_pids


def test_model_reload_rolls_without_dropping_below_reserved(local: Local) -> None:
    pool = make_pool(local.site, replicas=2)
    samples, old_pids = reload_sampled(local, pool)
    assert min(samples) >= 2, f"ready count dipped: {min(samples)}"
    assert not old_pids & set(ready_pids(local, pool.id))
    port = local.runtime.ready_endpoints(pool.id)[0]
    assert invoke(port, {"values": [1]})["output"]["sum"] == 10


def test_model_reload_at_a_quota_of_replicas_plus_one_keeps_every_replica_warm(
        local: Local) -> None:
    """As alice in config-examples: maxEngines 3, 2 replicas, a new model file and digest.
    The quota has room for exactly one surge replica; the ready count must stay at 2."""
    local.runtime.apply(Action(Op.CREATE, ResourceKind.QUOTA, "alice",
                               after=Quota("alice", 3)))
    pool = make_pool(local.site, replicas=2)
    samples, old_pids = reload_sampled(local, pool, every=0.02)
    assert len(samples) > 10
    assert min(samples) >= 2, f"ready count dipped to {min(samples)} of 2"
    assert not old_pids & set(ready_pids(local, pool.id))
    assert len(workers_of(local.site.state)) <= 3


def test_wrong_digest_fails_warmup_and_old_replicas_keep_serving(local: Local) -> None:
    pool = make_pool(local.site, replicas=1)
    warm(local, pool)
    [old_pid] = ready_pids(local, pool.id)
    local.site.write_model("m2.json", factor=10)
    bad = replace(pool, model_path="data://acme/models/m2.json", model_digest="sha256:" + "0" * 64)
    local.runtime.apply(change(Op.RELOAD, pool, bad))
    error = wait_for(lambda: local.runtime.observe().status[pool.id].error, message="error")
    assert "digest mismatch" in error and ".log" in error
    assert ready_pids(local, pool.id) == [old_pid]
    port = local.runtime.report()  # the old replica still answers on its port
    sqlite = sqlite3.connect(local.site.state / "state.db")
    [(old_port,)] = sqlite.execute("SELECT port FROM replicas WHERE state = 'ready'").fetchall()
    sqlite.close()
    assert invoke(old_port, {"values": [1]})["output"]["sum"] == 1
    assert port["agent"]["running"]


def test_deleted_pool_stops_its_workers(local: Local) -> None:
    pool = make_pool(local.site, replicas=2)
    warm(local, pool)
    local.runtime.apply(delete(pool))
    wait_for(lambda: not workers_of(local.site.state), message="workers stopped")


def test_quota_limits_engines_and_says_so(local: Local) -> None:
    local.runtime.apply(Action(Op.CREATE, ResourceKind.QUOTA, "alice",
                               after=Quota("alice", 1)))
    pool = make_pool(local.site, replicas=2)
    local.runtime.apply(create(pool))
    local.agent()
    error = wait_for(lambda: local.runtime.observe().status[pool.id].error, message="error")
    assert "maxEngines 1" in error
    wait_for(lambda: local.runtime.observe().ready(pool.id) == 1, message="one ready")
    assert len(workers_of(local.site.state)) == 1


def test_a_quota_shortfall_is_not_a_failure_that_waiting_gives_up_on(local: Local) -> None:
    local.runtime.apply(Action(Op.CREATE, ResourceKind.QUOTA, "alice",
                               after=Quota("alice", 1)))
    pool = make_pool(local.site, replicas=2)
    local.runtime.apply(create(pool))
    local.agent()
    impatient = LocalRuntime(local.site.state, error_patience=0.0)
    try:
        impatient.wait_ready(pool.id, 1, timeout=15)  # short of quota, yet not "failing"
    finally:
        impatient.close()
    with local.runtime.store.read() as conn:
        row = conn.execute("SELECT error, error_since FROM pools").fetchone()
    assert "allows 1 of 2 replicas" in row["error"] and row["error_since"] is None


def test_restarted_agent_adopts_live_workers(local: Local) -> None:
    pool = make_pool(local.site, replicas=2)
    local.runtime.apply(create(pool))
    with standalone_agent(local.site.state) as standalone:
        wait_for(lambda: local.runtime.observe().ready(pool.id) == 2, message="ready")
        pids = ready_pids(local, pool.id)
        standalone.kill()  # kill -9: its workers live on
        standalone.wait()
        assert sorted(str(p) for p in workers_of(local.site.state)) == pids
        agent = local.agent()
        for _ in range(3):  # a few passes change nothing
            agent.reconcile_once()
        assert ready_pids(local, pool.id) == pids


def test_a_second_agent_on_the_same_state_is_refused(local: Local) -> None:
    local.agent()
    with pytest.raises(Exception, match="locked by `reconciler agent`"):
        Agent(local.site.state).start()


def test_sigterm_stops_the_standalone_agent_and_all_its_workers(local: Local) -> None:
    pool = make_pool(local.site, replicas=2)
    local.runtime.apply(create(pool))
    with standalone_agent(local.site.state) as standalone:
        wait_for(lambda: local.runtime.observe().ready(pool.id) == 2, message="ready")
        standalone.send_signal(signal.SIGTERM)
        assert standalone.wait(timeout=15) == 0
    assert workers_of(local.site.state) == []
    assert not local.runtime.report()["agent"]["running"]


def test_an_agent_killed_with_sigkill_is_reported_gone_at_once(local: Local) -> None:
    """Its heartbeat is still fresh for seconds; the lock it held is released by the kernel
    the moment it dies, and that is what status and wait_ready go by."""
    pool = make_pool(local.site, replicas=1)
    local.runtime.apply(create(pool))
    local.runtime.apply(delete(pool))  # a store, no workers: nothing outlives the agent
    with standalone_agent(local.site.state) as standalone:
        wait_for(lambda: local.runtime.report()["agent"]["running"], message="agent running")
        standalone.send_signal(signal.SIGKILL)
        standalone.wait()
        agent = local.runtime.report()["agent"]
        assert agent["heartbeat"] is not None and not agent["running"]
    local.runtime.apply(create(pool))
    with pytest.raises(NotReady, match="no local agent is running"):
        local.runtime.wait_ready(pool.id, 1, timeout=30)
    local.agent()  # a new agent takes the lock at once and is reported running
    assert local.runtime.report()["agent"]["running"]
