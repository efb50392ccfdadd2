"""LocalRuntime: the Runtime protocol on the SQLite store.

apply() only writes the store (one transaction per action, idempotent); the
agent makes processes match it. observe() never creates anything, so `plan`
on a fresh directory leaves no state behind. The context the agent needs
besides the pools (nodes, data/code roots, config dir) is written with the
first write of a LocalRuntime (one per apply run or daemon pass), not per action,
and so is the version catalog `invoke` routes by (catalog.py) when the runtime
was opened with the config its writes come from.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.config.model import Config, Settings
from reconciler.errors import RuntimeFault
from reconciler.plan.plans import Action, Op
from reconciler.runtimes.base import NotReady
from reconciler.runtimes.local import catalog
from reconciler.runtimes.local import store as db
from reconciler.runtimes.local.nodes import local_nodes
from reconciler.states import (
    LiveState,
    Node,
    PoolStatus,
    Quota,
    ReplicaStatus,
    Tenant,
    WarmPool,
)

ERROR_PATIENCE = 20.0  # seconds a pool may keep failing before wait_ready gives up on it
NO_AGENT = ("no local agent is running (start `reconciler daemon`); "
            "the old pool keeps serving")


class LocalRuntime:
    name = "local"

    def __init__(self, state_dir: Path, *, settings: Settings | None = None,
                 data_root: Path | None = None, code_root: Path | None = None,
                 config_dir: Path | None = None, busy_timeout: float = 10.0,
                 error_patience: float = ERROR_PATIENCE, config: Config | None = None) -> None:
        """`config`: the config this runtime's writes come from; its versions are recorded
        for routing calls (catalog.py). Without it (a saved plan), the recorded catalog
        goes stale at the first change, and `invoke` consults the config instead."""
        self.state_dir = Path(state_dir)
        self.config = config
        self.settings = settings or (config.settings if config is not None else Settings())
        self.data_root = Path(data_root).resolve() if data_root else None
        self.code_root = Path(code_root).resolve() if code_root else None
        self.config_dir = Path(config_dir).resolve() if config_dir else None
        self.store = db.Store(self.state_dir, busy_timeout=busy_timeout)
        self.error_patience = error_patience
        self._nodes: list[Node] | None = None
        self._context_saved = False  # nodes and roots written by this instance already

    # --- reads ----------------------------------------------------------------------------

    def observe(self) -> LiveState:
        if not db.Store.exists(self.state_dir):
            return LiveState()
        with self.store.read() as conn:
            tenants = tuple(Tenant(r["account"], r["type"]) for r in
                            conn.execute("SELECT * FROM tenants ORDER BY account"))
            quotas = tuple(Quota(r["account"], r["max_engines"], r["max_gpus"], r["source"])
                           for r in conn.execute("SELECT * FROM quotas ORDER BY account"))
            pools = db.load_pools(conn)
            replicas = conn.execute("SELECT * FROM replicas ORDER BY id").fetchall()
            revision = str(db.generation(conn))
        by_pool: dict[str, list[sqlite3.Row]] = {}
        for replica in replicas:
            by_pool.setdefault(replica["pool_id"], []).append(replica)
        status = {pool.id: pool_status(row, by_pool.get(pool.id, [])) for pool, row in pools}
        return LiveState(tenants=tenants, quotas=quotas, pools=tuple(p for p, _ in pools),
                         status=MappingProxyType(status), revision=revision)

    def nodes(self) -> list[Node]:
        if self._nodes is None:
            self._nodes = local_nodes(self.settings)
        return list(self._nodes)

    # --- writes ---------------------------------------------------------------------------

    def apply(self, action: Action) -> None:
        """One transaction; idempotent (create = upsert, delete of a missing object = no-op)."""
        with self.store.write() as conn:
            saving = self._save_context_once(conn)
            if _apply(conn, action):
                db.bump_generation(conn)
                if self.config is not None:
                    catalog.mark_fresh(conn)
        self._context_saved |= saving  # only once committed

    def save_roots(self) -> None:
        """Record where pools' files are (data/code roots, config dir) and the version
        catalog, without other changes. Cheap to call on every pass: nothing is written
        when the store already holds all of it."""
        if self._context_saved:
            return
        with self.store.read() as conn:
            current = db.get_meta(conn, "context_hash") == self._context_digest() and (
                self.config is None or (catalog.is_fresh(conn) and db.get_meta(
                    conn, "catalog_hash") == catalog.digest(catalog.rows_of(self.config))))
        if not current:
            with self.store.write() as conn:
                self._save_context(conn)
        self._context_saved = True

    def record_apply(self, result: dict[str, Any], source_commit: str | None) -> None:
        """The audit history: one row per apply (time, commit, plan summary, result)."""
        summary = {outcome: n for outcome, n in (result.get("summary") or {}).items() if n}
        with self.store.write() as conn:
            saving = self._save_context_once(conn)
            conn.execute(
                "INSERT INTO history (time, source_commit, fingerprint, summary, result, ok) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (db.now_rfc3339(), source_commit, result.get("fingerprint"),
                 json.dumps(summary), json.dumps(result), int(bool(result.get("ok", True)))))
        self._context_saved |= saving

    def _save_context_once(self, conn: sqlite3.Connection) -> bool:
        """Write the context in this transaction unless this instance already has; whether
        it did (the caller marks it saved once the transaction commits)."""
        if self._context_saved:
            return False
        self._save_context(conn)
        return True

    def _save_context(self, conn: sqlite3.Connection) -> None:
        for key, value in (("data_root", self.data_root), ("code_root", self.code_root),
                           ("config_dir", self.config_dir)):
            if value is not None:
                db.set_meta(conn, key, str(value))
        conn.execute("DELETE FROM nodes")
        for node in self.nodes():
            conn.execute("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (node.name, node.processor, node.cpu_millis, node.memory_bytes,
                          node.gpu, node.pods, int(node.emulated_gpu)))
        db.set_meta(conn, "context_hash", self._context_digest())
        if self.config is not None:
            catalog.record(conn, catalog.rows_of(self.config))

    def _context_digest(self) -> str:
        """What _save_context writes besides the catalog, as one hash."""
        parts = [str(self.data_root), str(self.code_root), str(self.config_dir),
                 *(repr(node) for node in self.nodes())]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    # --- waiting --------------------------------------------------------------------------

    def wait_ready(self, pool_id: str, replicas: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ready, error, since, agent = self._readiness(pool_id)
            if ready >= replicas:
                return
            if not agent["running"]:
                raise NotReady(f"pool {pool_id}: {ready} of {replicas} ready; {NO_AGENT}")
            if error and since and time.time() - since > self.error_patience:
                # Failing for a while (a digest mismatch, a quota): waiting longer won't help.
                raise NotReady(f"pool {pool_id} is failing: {error}; the old pool keeps "
                               "serving")
            if time.monotonic() >= deadline:
                why = f" (last error: {error})" if error else ""
                raise NotReady(f"pool {pool_id}: {ready} of {replicas} replicas ready after "
                               f"{timeout:.0f}s{why}; the old pool keeps serving")
            time.sleep(0.2)

    def _readiness(self, pool_id: str) -> tuple[int, str | None, float | None, dict[str, Any]]:
        if not db.Store.exists(self.state_dir):
            return 0, None, None, {"running": False}
        with self.store.read() as conn:
            row = conn.execute("SELECT spec_hash, error, error_since FROM pools WHERE id = ?",
                               (pool_id,)).fetchone()
            if row is None:
                raise NotReady(f"pool {pool_id} is not in the local store")
            ready = conn.execute(
                "SELECT COUNT(*) FROM replicas WHERE pool_id = ? "
                "AND current_ready(state, spec_hash, ?)", (pool_id, row["spec_hash"])).fetchone()[0]
            return ready, row["error"], row["error_since"], db.agent_info(conn, self.state_dir)

    # --- extras for status and invoke -----------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Nodes, agent, roots and last apply: what `status` shows beyond the pools."""
        if not db.Store.exists(self.state_dir):
            return {"nodes": [], "agent": {"running": False, "heartbeat": None},
                    "lastApply": None, "roots": {}}
        with self.store.read() as conn:
            nodes = [dict(r) for r in conn.execute("SELECT * FROM nodes ORDER BY name")]
            last = conn.execute("SELECT * FROM history ORDER BY id DESC LIMIT 1").fetchone()
            roots = {k: db.get_meta(conn, k) for k in ("data_root", "code_root", "config_dir")}
            agent = db.agent_info(conn, self.state_dir)
        for node in nodes:
            node["emulated_gpu"] = bool(node["emulated_gpu"])
        last_apply = None if last is None else {
            "time": last["time"], "sourceCommit": last["source_commit"],
            "fingerprint": last["fingerprint"], "summary": json.loads(last["summary"] or "{}"),
            "ok": bool(last["ok"])}
        return {"nodes": nodes, "agent": agent, "lastApply": last_apply, "roots": roots}

    def ready_endpoints(self, pool_id: str) -> list[int]:
        """Loopback ports of the pool's ready replicas with the current spec."""
        if not db.Store.exists(self.state_dir):
            return []
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT r.port FROM replicas r JOIN pools p ON p.id = r.pool_id "
                "WHERE r.pool_id = ? AND current_ready(r.state, r.spec_hash, p.spec_hash) "
                "AND r.port IS NOT NULL ORDER BY r.id", (pool_id,)).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        self.store.close()


def pool_status(pool_row: sqlite3.Row, replicas: list[sqlite3.Row]) -> PoolStatus:
    """Ready = replicas in state ready running the pool's current spec (so its digest).

    While a rollout of a new spec fails (a wrong digest, a model that crashes), the
    replicas of the previous spec keep serving (calls are routed to them); the error
    says so, with their model digests, so every view shows why the pool is stuck."""
    current = pool_row["spec_hash"]
    ready = sum(1 for r in replicas if db.current_ready(r["state"], r["spec_hash"], current))
    items = tuple(ReplicaStatus(id=str(r["pid"]) if r["pid"] else f"replica-{r['id']}",
                                state=r["state"], model_digest=r["model_digest"],
                                started_at=r["started_at"], error=r["error"])
                  for r in replicas)
    error = pool_row["error"]
    previous = [r for r in replicas if r["state"] == "ready" and r["spec_hash"] != current]
    if error and previous and pool_row["error_since"] is not None:
        digests = ", ".join(sorted({r["model_digest"] or "?" for r in previous}))
        error = (f"rollout stuck: the new spec's replicas fail ({error}); "
                 f"{len(previous)} replica(s) of the previous spec ({digests}) keep serving "
                 f"until new ones are ready")
    return PoolStatus(ready=ready, error=error, replicas=items)


def _apply(conn: sqlite3.Connection, action: Action) -> bool:
    """Write one action; True when the spec tables changed."""
    obj = action.obj
    if action.op is Op.DELETE:
        table = {Tenant: "tenants", Quota: "quotas", WarmPool: "pools"}[type(obj)]
        key = "id" if isinstance(obj, WarmPool) else "account"
        return conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (obj.id,)).rowcount > 0
    if isinstance(obj, Tenant):
        return _upsert(conn, "tenants", "account", obj.account, {"type": obj.type})
    if isinstance(obj, Quota):
        return _upsert(conn, "quotas", "account", obj.account,
                       {"max_engines": obj.max_engines, "max_gpus": obj.max_gpus,
                        "source": obj.source})
    if isinstance(obj, WarmPool):
        return _upsert_pool(conn, obj, action.in_place)
    raise RuntimeFault(f"the local runtime cannot apply {action.kind} {action.id}")


def _upsert(conn: sqlite3.Connection, table: str, key: str, ident: str,
            values: dict[str, Any]) -> bool:
    row = conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (ident,)).fetchone()
    if row is not None and all(row[name] == value for name, value in values.items()):
        return False
    names = [key, *values]
    updates = ", ".join(f"{name} = excluded.{name}" for name in values)
    conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                 f"({', '.join('?' for _ in names)}) ON CONFLICT ({key}) DO UPDATE SET {updates}",
                 (ident, *values.values()))
    return True


def _upsert_pool(conn: sqlite3.Connection, pool: WarmPool, in_place: bool) -> bool:
    spec = json.dumps(pool.to_json(), sort_keys=True)
    digest = db.spec_hash(pool)
    row = conn.execute("SELECT spec, spec_hash, in_place FROM pools WHERE id = ?",
                       (pool.id,)).fetchone()
    if row is not None and row["spec"] == spec and bool(row["in_place"]) == in_place:
        return False
    now = db.now_rfc3339()
    if row is None:
        conn.execute("INSERT INTO pools (id, spec, spec_hash, in_place, error, created_at, "
                     "updated_at, seq) VALUES (?, ?, ?, ?, NULL, ?, ?, "
                     "(SELECT COALESCE(MAX(seq), 0) + 1 FROM pools))",
                     (pool.id, spec, digest, int(in_place), now, now))
        return True
    # A new spec gets a fresh chance: the old warm-up error no longer applies.
    error_reset = ", error = NULL, error_since = NULL" if row["spec_hash"] != digest else ""
    conn.execute(f"UPDATE pools SET spec = ?, spec_hash = ?, in_place = ?, updated_at = ?"
                 f"{error_reset} WHERE id = ?", (spec, digest, int(in_place), now, pool.id))
    return True
