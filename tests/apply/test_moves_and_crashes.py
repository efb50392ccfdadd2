"""Make-before-break with real workers, and an apply process killed with SIGKILL mid-plan."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest_local import Local
from localkit import create, delete, make_pool, plan_of, wait_for, workers_of

from reconciler.apply import Outcome, execute
from reconciler.runtimes.local.runtime import LocalRuntime

pytestmark = pytest.mark.slow

DRIVER = """
import json, os, signal, sys
from pathlib import Path
from reconciler.apply import execute
from reconciler.plan.plans import Plan
from reconciler.runtimes.local.runtime import LocalRuntime

plan_file, state, data, src, kill_after = sys.argv[1:]
plan = Plan.from_json(json.loads(Path(plan_file).read_text()))
runtime = LocalRuntime(Path(state), data_root=Path(data), code_root=Path(src))
done = []
def progress(entry):
    done.append(entry)
    print(entry.action_id, entry.outcome, flush=True)
    if len(done) == int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)
result = execute(plan, runtime, journal_dir=Path(state), progress=progress, wait_timeout=20)
print(json.dumps({"resumed": result.resumed}), flush=True)
"""


def sample_move(db_path: Path, old_id: str, new_id: str, stop: threading.Event,
                samples: list[tuple[bool, int, int]]) -> None:
    """(old pool still in the store, ready replicas of old, ready replicas of new)."""
    db = sqlite3.connect(db_path)
    query = "SELECT COUNT(*) FROM replicas WHERE pool_id = ? AND state = 'ready'"
    while not stop.is_set():
        with db:
            exists = db.execute("SELECT 1 FROM pools WHERE id = ?", (old_id,)).fetchone()
            old = db.execute(query, (old_id,)).fetchone()[0]
            new = db.execute(query, (new_id,)).fetchone()[0]
        samples.append((exists is not None, old, new))
        stop.wait(0.01)
    db.close()


def test_moved_reservation_keeps_warm_capacity(local: Local) -> None:
    old = make_pool(local.site, commit="a" * 40, replicas=2)
    local.runtime.apply(create(old))
    local.agent()
    local.runtime.wait_ready(old.id, 2, timeout=15)
    new = make_pool(local.site, commit="b" * 40, version="1.1.0", replicas=2)
    samples: list[tuple[bool, int, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_move, args=(
        local.site.state / "state.db", old.id, new.id, stop, samples))
    sampler.start()
    try:
        result = execute(plan_of(create(new), delete(old, wait_for=new.id)), local.runtime,
                         wait_timeout=20)
        wait_for(lambda: samples and samples[-1][1] == 0, message="old replicas stopped")
    finally:
        stop.set()
        sampler.join()
    assert [e.outcome for e in result.entries] == [Outcome.CREATED, Outcome.DELETED]
    assert all(o + n >= 2 for _, o, n in samples), "warm capacity dipped during the move"
    assert all(n >= 2 for exists, _, n in samples if not exists), "old deleted before new ready"
    wait_for(lambda: len(workers_of(local.site.state)) == 2, message="old workers gone")


def test_apply_killed_between_actions_then_rerun_converges(local: Local,
                                                           tmp_path: Path) -> None:
    pools = [make_pool(local.site, caller=c) for c in ("alice", "bob", "carol")]
    plan = plan_of(*(create(p) for p in pools), fingerprint="fp-crash")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan.to_json()))
    local.agent()
    args = [sys.executable, "-c", DRIVER, str(plan_file), str(local.site.state),
            str(local.site.data), str(local.site.src)]
    first = subprocess.run([*args, "2"], capture_output=True, text=True, timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert {p.id for p in local.runtime.observe().pools} == {pools[0].id, pools[1].id}
    second = subprocess.run([*args, "0"], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "stopped after 2 of 3 actions" in second.stdout
    assert second.stdout.count("created") == 3  # all again: idempotent, no carry-over
    for pool in pools:
        local.runtime.wait_ready(pool.id, 1, timeout=15)
    live = local.runtime.observe()
    assert sorted(p.id for p in live.pools) == sorted(p.id for p in pools)
    assert all(len(live.status[p.id].replicas) == 1 for p in pools)
    assert len(workers_of(local.site.state)) == 3  # no duplicate and no orphan


def test_move_to_a_failing_pool_is_deferred_and_the_old_keeps_serving(local: Local) -> None:
    old = make_pool(local.site, commit="a" * 40)
    local.runtime.apply(create(old))
    local.agent()
    local.runtime.wait_ready(old.id, 1, timeout=15)
    bad = make_pool(local.site, commit="b" * 40, model_digest="sha256:" + "0" * 64)
    impatient = LocalRuntime(local.site.state, error_patience=0.5)
    try:
        result = execute(plan_of(create(bad), delete(old, wait_for=bad.id)), impatient,
                         wait_timeout=30)
    finally:
        impatient.close()
    assert [e.outcome for e in result.entries] == [Outcome.CREATED, Outcome.DEFERRED]
    assert "digest mismatch" in result.deferred[0].message
    assert local.runtime.observe().ready(old.id) == 1


def test_a_deferred_delete_of_an_interrupted_run_is_deferred_again(local: Local,
                                                                   tmp_path: Path) -> None:
    """A deferred delete changed nothing: the apply killed right after it must not make the
    next run of the same plan report it as done ("already applied") and drop the warning."""
    old = make_pool(local.site, commit="a" * 40)
    new = make_pool(local.site, commit="b" * 40, version="1.1.0")
    local.runtime.apply(create(old))
    local.runtime.apply(create(new))
    plan = plan_of(delete(old, wait_for=new.id), fingerprint="fp-deferred")  # no agent runs
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan.to_json()))
    args = [sys.executable, "-c", DRIVER, str(plan_file), str(local.site.state),
            str(local.site.data), str(local.site.src)]
    first = subprocess.run([*args, "1"], capture_output=True, text=True, timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert f"{old.id} deferred" in first.stdout
    second = subprocess.run([*args, "0"], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "stopped after 0 of 1 actions" in second.stdout
    assert f"{old.id} deferred" in second.stdout and "unchanged" not in second.stdout
    assert {p.id for p in local.runtime.observe().pools} == {old.id, new.id}
