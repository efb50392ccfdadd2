"""The local runtime's store: one SQLite file, the runtime's API server.

Spec tables (tenants, quotas, pools) are written by `LocalRuntime.apply`, one
transaction per action, and every spec change bumps a generation counter that
is the LiveState revision. Status tables (replicas, the agent heartbeat,
events) are written by the agent and the workers and never bump it, so replica
churn does not make saved plan files stale. WAL mode lets readers (status,
plan) run while the agent writes; every write is one transaction, so a process
killed at any moment leaves the store consistent.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import ReconcilerError, RuntimeFault
from reconciler.runtimes.local.lock import is_held
from reconciler.timestamps import now_rfc3339

if TYPE_CHECKING:
    from reconciler.states import WarmPool

AGENT_LOCK = "agent.lock"  # held (flock) by the running agent for as long as it runs

DB_NAME = "state.db"
BUSY_TIMEOUT_MS = 10_000
MAX_EVENTS = 2000

# Append-only: migration N brings a store at schema version N-1 to N.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tenants (account TEXT PRIMARY KEY, type TEXT NOT NULL);
    CREATE TABLE quotas (account TEXT PRIMARY KEY, max_engines INTEGER NOT NULL,
                         max_gpus INTEGER, source TEXT NOT NULL DEFAULT '');
    CREATE TABLE pools (id TEXT PRIMARY KEY, spec TEXT NOT NULL, spec_hash TEXT NOT NULL,
                        in_place INTEGER NOT NULL DEFAULT 0, error TEXT,
                        created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE replicas (id INTEGER PRIMARY KEY AUTOINCREMENT, pool_id TEXT NOT NULL,
                           spec_hash TEXT NOT NULL, state TEXT NOT NULL, pid INTEGER,
                           proc_start INTEGER, port INTEGER, model_digest TEXT, error TEXT,
                           log_path TEXT, started_at TEXT NOT NULL, ready_at TEXT,
                           stopping_since REAL);
    CREATE INDEX replicas_pool ON replicas (pool_id);
    CREATE TABLE nodes (name TEXT PRIMARY KEY, processor TEXT NOT NULL, cpu_millis INTEGER,
                        memory_bytes INTEGER, gpu INTEGER, pods INTEGER, emulated_gpu INTEGER);
    CREATE TABLE agent (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER, proc_start INTEGER,
                        started_at TEXT, heartbeat REAL);
    CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL,
                          source_commit TEXT, fingerprint TEXT, summary TEXT, result TEXT,
                          ok INTEGER);
    CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL,
                         pool_id TEXT, replica_id INTEGER, message TEXT NOT NULL);
    """,
    # 2: since when a pool has been failing, so waiting for it can give up early.
    """
    ALTER TABLE pools ADD COLUMN error_since REAL;
    """,
    # 3: the order pools were created in (an older pool keeps its share of a quota);
    # existing rows keep their insert order. A quota shortfall is no longer "failing".
    """
    ALTER TABLE pools ADD COLUMN seq INTEGER;
    UPDATE pools SET seq = rowid;
    UPDATE pools SET error_since = NULL WHERE error LIKE 'quota of %';
    """,
    # 4: a new pool's seq is MAX(seq) + 1: without an index that scans every pool, per
    # create (quadratic over an apply of thousands of pools).
    """
    CREATE INDEX pools_seq ON pools (seq);
    """,
    # 5: the version catalog invoke routes by without loading the config (catalog.py), and
    # the GPU devices a replica was given (CUDA_VISIBLE_DEVICES).
    """
    CREATE TABLE versions (algorithm TEXT NOT NULL, sha TEXT NOT NULL, version TEXT,
                           visibility TEXT NOT NULL, latest_public INTEGER NOT NULL,
                           PRIMARY KEY (algorithm, sha)) WITHOUT ROWID;
    CREATE INDEX versions_number ON versions (algorithm, version);
    ALTER TABLE replicas ADD COLUMN devices TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def current_ready(state: str, replica_spec_hash: str, pool_spec_hash: str) -> bool:
    """What "a ready replica" of a pool means everywhere (observe, wait_ready, invoke's
    endpoints, the agent): in state ready AND running the pool's current spec, so its
    model digest. An old replica still serving during a roll is not counted. Also an SQL
    function on every Store connection: `current_ready(r.state, r.spec_hash, p.spec_hash)`."""
    return state == "ready" and replica_spec_hash == pool_spec_hash


def spec_hash(pool: WarmPool) -> str:
    """What a running replica must match: a change here means a rolling replace.
    Replica count, sources and display fields are deliberately left out."""
    import hashlib  # here: `invoke`, which never hashes a spec, does not load OpenSSL

    fields: tuple[str, ...] = (pool.model_path, pool.model_digest, pool.image,
                               pool.entrypoint, pool.processor, pool.cpu, pool.memory,
                               str(pool.gpu))
    if pool.code_digest:  # only when there is one: stores from before it keep their hashes
        fields += (pool.code_digest,)
    return hashlib.sha256("\0".join(fields).encode()).hexdigest()[:16]


def translate(exc: sqlite3.Error) -> RuntimeFault:
    """SQLite errors at the runtime's edge: a busy database is worth retrying."""
    text = str(exc)
    busy = isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
    return RuntimeFault(f"local store: {text}", retryable=busy)


class Store:
    """A connection to state_dir/state.db. Thread-safe by a lock around each
    transaction; open one per process (the agent, a CLI command)."""

    def __init__(self, state_dir: Path, *, busy_timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
        self.state_dir = Path(state_dir)
        self.busy_timeout = busy_timeout
        self.path = self.state_dir / DB_NAME
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._read_only = False

    @staticmethod
    def exists(state_dir: Path) -> bool:
        """Is there a store? A state.db that is not a regular file (a FIFO, a directory, a
        device) is an error, not an empty runtime: SQLite would fail on it action by action."""
        path = Path(state_dir) / DB_NAME
        if path.is_file():
            return True
        if path.exists():
            raise RuntimeFault(f"the local store {path} is not a regular file; remove it "
                               "(or point --state elsewhere)")
        return False

    def read_only(self) -> bool:
        """The state directory (or its store) exists but this process may not write it:
        `status` and `plan` still read it (a backup, another user's state)."""
        return self.path.is_file() and not (os.access(self.state_dir, os.W_OK)
                                            and os.access(self.path, os.W_OK))

    def _connect_read_only(self) -> sqlite3.Connection:
        """A connection that never writes. SQLite reads a WAL store only where it can make
        the -shm file; where it cannot (the directory is read-only for this user), the
        store is opened as immutable: exact for a read-only copy, but while a writer
        elsewhere changes it a read may see it half-way (or fail): run status with write
        access to the state directory for a live view of a running agent."""
        uri = self.path.resolve().as_uri()
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            conn = sqlite3.connect(uri + query, uri=True, timeout=self.busy_timeout,
                                   isolation_level=None, check_same_thread=False)
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                conn.close()
                continue
            conn.row_factory = sqlite3.Row
            conn.create_function("current_ready", 3, current_ready, deterministic=True)
            version = _schema_version(conn)
            if version != SCHEMA_VERSION:
                conn.close()
                raise RuntimeFault(f"the local store {self.path} is at schema version "
                                   f"{version}, not {SCHEMA_VERSION}, and its directory is "
                                   f"read-only: run this reconciler with a writable --state once")
            return conn
        raise RuntimeFault(f"cannot read the local store {self.path} (its directory is "
                           f"read-only)")

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None and self.path.is_file() and not os.access(self.path, os.R_OK):
            raise RuntimeFault(f"cannot read the local store {self.path}: permission denied "
                               f"(another user's state? use a --state of your own)")
        if self._conn is None and self.read_only():
            try:
                self._conn = self._connect_read_only()
            except sqlite3.Error as exc:
                raise translate(exc) from exc
            self._read_only = True
        if self._conn is None:
            self.exists(self.state_dir)  # refuses a state.db that is not a regular file
            try:
                self.state_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ReconcilerError(f"cannot use state directory {self.state_dir}: "
                                      f"{exc}") from None
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                       isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.create_function("current_ready", 3, current_ready, deterministic=True)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
                _migrate(conn)
            except sqlite3.Error as exc:
                raise translate(exc) from exc
            self._conn = conn
        return self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the writer lock is taken up front)."""
        with self._lock:
            conn = self._connect()
            if self._read_only:
                raise ReconcilerError(f"cannot write the local store {self.path}: its state "
                                      f"directory is read-only for this user")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise translate(exc) from exc

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One consistent read (a deferred transaction sees a single snapshot)."""
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise translate(exc) from exc

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """One read statement, outside any explicit transaction: a single statement sees one
        snapshot, so this is consistent and saves the BEGIN and COMMIT of read() (routing
        a call is one such query)."""
        with self._lock:
            conn = self._connect()
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise translate(exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._read_only = False


def _schema_version(conn: sqlite3.Connection) -> int | None:
    """The store's schema version; None for a store without one yet (a new file)."""
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                             "AND name = 'schema_version'").fetchone()
    if has_table is None:
        return None
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return row[0] if row else None


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the store to SCHEMA_VERSION. A store already there is only read (no writer
    lock: `status` and probes must not queue behind the agent or an apply)."""
    current = _schema_version(conn)
    if current is not None and current > SCHEMA_VERSION:
        raise RuntimeFault(
            f"the local store is at schema version {current}, newer than this "
            f"reconciler understands ({SCHEMA_VERSION}); upgrade reconciler")
    if current == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0  # again, under the lock: another process may have won
        if current > SCHEMA_VERSION:
            raise RuntimeFault(
                f"the local store is at schema version {current}, newer than this "
                f"reconciler understands ({SCHEMA_VERSION}); upgrade reconciler")
        for script in MIGRATIONS[current:]:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        else:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# --- small helpers shared by the runtime and the agent -------------------------------------


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def generation(conn: sqlite3.Connection) -> int:
    return int(get_meta(conn, "generation", "0") or 0)


def bump_generation(conn: sqlite3.Connection) -> None:
    set_meta(conn, "generation", str(generation(conn) + 1))


# The event log as log lines too, on this logger: the agent keeps it quiet (WARNING)
# unless it runs alone (`reconciler agent`); inside the daemon, whose every line names a
# pass, the store keeps them.
EVENTS_LOGGER = "reconciler.agent.events"


def add_event(conn: sqlite3.Connection, message: str, pool_id: str | None = None,
              replica_id: int | None = None) -> None:
    """The agent's record of every state change; trimmed so it never grows without bound."""
    import logging  # here: `invoke` writes no events and need not load it

    logging.getLogger(EVENTS_LOGGER).info("%s%s", f"{pool_id}: " if pool_id else "", message)
    cursor = conn.execute(
        "INSERT INTO events (time, pool_id, replica_id, message) VALUES (?, ?, ?, ?)",
        (now_rfc3339(), pool_id, replica_id, message))
    if cursor.lastrowid and cursor.lastrowid % 100 == 0:
        conn.execute("DELETE FROM events WHERE id <= ?", (cursor.lastrowid - MAX_EVENTS,))


def load_pools(conn: sqlite3.Connection, *, oldest_first: bool = False
               ) -> list[tuple[WarmPool, sqlite3.Row]]:
    """Every pool with its row, in id order, or in creation order with `oldest_first`."""
    from reconciler.states import WarmPool

    order = "seq, id" if oldest_first else "id"
    rows = conn.execute(f"SELECT * FROM pools ORDER BY {order}").fetchall()
    # one JSON decode for all the specs (not one per row: a decode call costs more than
    # its parsing for a spec this small); each spec is a JSON object written by apply
    specs = json.loads("[" + ",".join(row["spec"] for row in rows) + "]") if rows else []
    return [(_pool(WarmPool, spec), row) for spec, row in zip(specs, rows, strict=True)]


def _pool(cls: type[WarmPool], spec: Any) -> WarmPool:
    """WarmPool.from_json on a dict decoded here (so it may be changed in place)."""
    if not isinstance(spec, dict):
        raise RuntimeFault("local store: a pool's spec is not a JSON object")
    spec["sources"] = tuple(spec.get("sources") or ())
    return cls(**spec)


def agent_info(conn: sqlite3.Connection, state_dir: Path) -> dict[str, Any]:
    """Whether an agent is alive: it holds STATE/agent.lock (the kernel drops the flock the
    moment its process dies, even by kill -9) and its heartbeat is younger than a few
    poll intervals (a live process whose agent loop is stuck is not running either)."""
    row = conn.execute("SELECT pid, started_at, heartbeat FROM agent WHERE id = 1").fetchone()
    if row is None or row["heartbeat"] is None:
        return {"running": False, "pid": None, "heartbeat": None}
    age = time.time() - row["heartbeat"]
    beat = datetime.fromtimestamp(row["heartbeat"], UTC).isoformat(timespec="seconds")
    running = age < HEARTBEAT_FRESH and is_held(Path(state_dir) / AGENT_LOCK)
    return {"running": running, "pid": row["pid"],
            "heartbeat": beat.replace("+00:00", "Z"), "startedAt": row["started_at"]}


HEARTBEAT_FRESH = 5.0  # seconds; the agent beats every poll interval (0.5 s by default)
