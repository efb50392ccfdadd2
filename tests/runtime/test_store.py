"""The store and LocalRuntime without processes: idempotent writes, revisions, schema, lock."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from localkit import create, delete, make_pool, make_site

from reconciler.config.model import NodeSpec, Processor, Settings
from reconciler.errors import LockHeld, ReconcilerError
from reconciler.plan.plans import Action, Op
from reconciler.runtimes.base import NotReady, Runtime
from reconciler.runtimes.local import store as db
from reconciler.runtimes.local.lock import StateLock, is_held
from reconciler.runtimes.local.runtime import LocalRuntime
from reconciler.states import Quota, ResourceKind, Tenant


def test_observe_on_a_fresh_directory_creates_nothing(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path / "state")
    live = runtime.observe()
    assert live.pools == () and live.revision == "0"
    assert not (tmp_path / "state").exists()
    assert isinstance(runtime, Runtime)


def test_apply_is_idempotent_and_revision_tracks_only_spec_changes(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    runtime = LocalRuntime(site.state, data_root=site.data, code_root=site.src)
    pool = make_pool(site, replicas=2)
    runtime.apply(create(pool))
    first = runtime.observe()
    assert first.pools == (pool,) and first.revision == "1"
    runtime.apply(create(pool))  # a repeated create is an upsert to the same object
    assert runtime.observe().revision == "1"
    with sqlite3.connect(site.state / db.DB_NAME) as conn:  # status churn, as the agent does
        conn.execute("INSERT INTO replicas (pool_id, spec_hash, state, started_at, pid) "
                     "VALUES (?, ?, 'ready', 'now', 4242)", (pool.id, db.spec_hash(pool)))
    live = runtime.observe()
    assert live.revision == "1" and live.ready(pool.id) == 1
    assert live.status[pool.id].replicas[0].id == "4242"
    scaled = replace(pool, replicas=3)
    runtime.apply(Action(Op.SCALE, ResourceKind.WARM_POOL, pool.id, before=pool, after=scaled))
    assert runtime.observe().pools == (scaled,) and runtime.observe().revision == "2"
    runtime.apply(delete(scaled))
    runtime.apply(delete(scaled))  # deleting what is gone is a no-op
    assert runtime.observe().pools == () and runtime.observe().revision == "3"


def test_tenants_and_quotas_round_trip(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path / "state")
    runtime.apply(Action(Op.CREATE, ResourceKind.TENANT, "acme",
                         after=Tenant("acme", "organization")))
    quota = Quota("acme", 4, 1, "acme-capacity")
    runtime.apply(Action(Op.CREATE, ResourceKind.QUOTA, "acme", after=quota))
    live = runtime.observe()
    assert live.tenants == (Tenant("acme", "organization"),) and live.quotas == (quota,)
    runtime.apply(Action(Op.DELETE, ResourceKind.QUOTA, "acme", before=quota))
    assert runtime.observe().quotas == ()


def test_roots_are_recorded_for_a_later_agent(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    LocalRuntime(site.state, data_root=site.data, code_root=site.src,
                 config_dir=site.root).apply(create(make_pool(site)))
    later = LocalRuntime(site.state)  # no roots given: keep what is stored
    later.apply(create(make_pool(site, caller="bob")))
    assert later.report()["roots"] == {"data_root": str(site.data.resolve()),
                                       "code_root": str(site.src.resolve()),
                                       "config_dir": str(site.root.resolve())}


def test_schema_version_is_recorded_and_newer_stores_are_refused(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path)
    runtime.apply(Action(Op.CREATE, ResourceKind.TENANT, "a", after=Tenant("a")))
    runtime.close()
    with sqlite3.connect(tmp_path / db.DB_NAME) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == \
            db.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(Exception, match="newer than this reconciler"):
        LocalRuntime(tmp_path).observe()


def test_wait_ready_without_an_agent_fails_at_once(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    runtime = LocalRuntime(site.state, data_root=site.data, code_root=site.src)
    pool = make_pool(site)
    runtime.apply(create(pool))
    with pytest.raises(NotReady, match="no local agent is running"):
        runtime.wait_ready(pool.id, 1, timeout=60)


def test_declared_nodes_replace_the_machine_and_gpu_is_emulated(tmp_path: Path) -> None:
    settings = Settings(local_nodes=(
        NodeSpec("cpu-a", Processor.CPU, "4", "8Gi", 0, 16),
        NodeSpec("gpu-a", Processor.GPU, "8", "16Gi", 2, 8)))
    nodes = LocalRuntime(tmp_path, settings=settings).nodes()
    assert [(n.name, n.cpu_millis, n.gpu, n.pods) for n in nodes] == \
        [("cpu-a", 4000, 0, 16), ("gpu-a", 8000, 2, 8)]
    assert nodes[1].emulated_gpu  # no nvidia-smi on the test machines
    default = LocalRuntime(tmp_path).nodes()
    assert default[0].name == "local-cpu" and default[0].memory_bytes > 0


def test_default_slots_come_from_the_environment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_LOCAL_SLOTS", "5")
    assert LocalRuntime(tmp_path).nodes()[0].pods == 5


def test_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    first = StateLock(tmp_path / "apply.lock", "reconciler apply").acquire()
    with pytest.raises(LockHeld, match=r"locked by `reconciler apply` \(pid \d+\) since"):
        StateLock(tmp_path / "apply.lock", "reconciler apply").acquire(timeout=0.2)
    first.release()
    with StateLock(tmp_path / "apply.lock", "again"):
        pass


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / db.DB_NAME) as conn:
        conn.executescript(db.MIGRATIONS[0])
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
    LocalRuntime(tmp_path).observe()
    with sqlite3.connect(tmp_path / db.DB_NAME) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == \
            db.SCHEMA_VERSION
        columns = [row[1] for row in conn.execute("PRAGMA table_info(pools)")]
        indexes = [row[1] for row in conn.execute("PRAGMA index_list(pools)")]
    assert "error_since" in columns and "seq" in columns and "pools_seq" in indexes


def test_pools_keep_their_creation_order_across_the_migration(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.state.mkdir()
    with sqlite3.connect(site.state / db.DB_NAME) as conn:
        conn.executescript(db.MIGRATIONS[0] + db.MIGRATIONS[1])
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (2)")
        for commit in ("c", "a"):  # created c first, then a (a has the lower id)
            pool = make_pool(site, commit=commit * 40)
            conn.execute("INSERT INTO pools (id, spec, spec_hash, created_at, updated_at) "
                         "VALUES (?, ?, 'h', 't', 't')",
                         (pool.id, json.dumps(pool.to_json())))
    runtime = LocalRuntime(site.state)
    runtime.apply(create(make_pool(site, commit="b" * 40)))
    runtime.apply(create(make_pool(site, commit="c" * 40, replicas=3)))  # an update: keeps seq
    with runtime.store.read() as conn:
        oldest_first = [p.commit[0] for p, _ in db.load_pools(conn, oldest_first=True)]
        by_id = [p.commit[0] for p, _ in db.load_pools(conn)]
    runtime.close()
    assert (oldest_first, by_id) == (["c", "a", "b"], ["a", "b", "c"])


@pytest.mark.parametrize("make", ["store", "lock"])
def test_an_unusable_state_directory_is_an_error_not_a_traceback(tmp_path: Path,
                                                                 make: str) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory's parent should be")
    state = blocker / "state"
    with pytest.raises(ReconcilerError, match=rf"cannot use state directory {state}: "):
        if make == "store":
            LocalRuntime(state).apply(Action(Op.CREATE, ResourceKind.TENANT, "a",
                                             after=Tenant("a")))
        else:
            StateLock(state / "apply.lock", "reconciler apply").acquire()


def test_reads_do_not_wait_for_the_writer_lock(tmp_path: Path) -> None:
    """status and wait_ready read while the agent or an apply holds the writer lock (WAL)."""
    site = make_site(tmp_path)
    LocalRuntime(site.state).apply(create(make_pool(site)))
    writer = sqlite3.connect(site.state / db.DB_NAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        reader = LocalRuntime(site.state, busy_timeout=0.05)  # a new connection
        assert len(reader.observe().pools) == 1
        assert reader.report()["agent"]["running"] is False
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_nodes_and_roots_are_written_once_per_runtime_not_per_action(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    runtime = LocalRuntime(site.state, data_root=site.data, code_root=site.src)
    with pytest.raises(ReconcilerError):  # a failed first write: rolled back, roots too
        runtime.apply(Action(Op.CREATE, ResourceKind.TENANT, "a", after=Tenant("a", None)))  # type: ignore[arg-type]
    runtime.apply(create(make_pool(site)))
    assert runtime.report()["roots"]["data_root"] == str(site.data.resolve())
    with sqlite3.connect(site.state / db.DB_NAME) as conn:  # someone else changes them
        conn.execute("UPDATE meta SET value = 'elsewhere' WHERE key = 'data_root'")
        conn.execute("DELETE FROM nodes")
    runtime.apply(create(make_pool(site, caller="bob")))  # this instance wrote them already
    assert runtime.report()["roots"]["data_root"] == "elsewhere"
    assert runtime.report()["nodes"] == []
    runtime.close()
    again = LocalRuntime(site.state, data_root=site.data, code_root=site.src)
    again.apply(create(make_pool(site, caller="carol")))  # a new run writes them again
    assert again.report()["roots"]["data_root"] == str(site.data.resolve())
    assert [n["name"] for n in again.report()["nodes"]] == ["local-cpu"]
    again.close()


def test_the_audit_history_keeps_the_results_own_summary(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path)
    result = {"fingerprint": "fp", "ok": True, "entries": [],
              "summary": {"created": 2, "deferred": 1, "failed": 0}}
    runtime.record_apply(result, "abc123")
    last = runtime.report()["lastApply"]
    runtime.close()
    assert last["summary"] == {"created": 2, "deferred": 1} and last["sourceCommit"] == "abc123"


def test_a_lock_is_seen_held_only_while_its_holder_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.lock"
    assert not is_held(path)  # no file
    lock = StateLock(path, "reconciler agent").acquire()
    assert is_held(path)
    lock.release()
    assert not is_held(path)
    with StateLock(path, "again"):  # the probe left nothing behind
        assert is_held(path)
