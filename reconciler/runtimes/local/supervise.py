"""The agent's hands: start, watch, stop and adopt worker processes, recording each
change in the store (replica rows and events) in its own transaction."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from datetime import datetime
from pathlib import Path

from reconciler.runtimes.local import procs
from reconciler.runtimes.local import store as db
from reconciler.states import DEFAULT_WARMUP_TIMEOUT, WarmPool

UNREPORTED_GRACE = 5.0  # a row without a pid that we did not start: its worker may still report


class Supervisor:
    def __init__(self, store: db.Store, state_dir: Path, *, grace: float = 5.0) -> None:
        self.store = store
        self.state_dir = state_dir
        self.grace = grace
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # replica id -> our child
        self._seen: dict[int, str] = {}  # replica id -> last state recorded as an event

    # --- identity ---------------------------------------------------------------------------

    def _alive(self, replica_id: int, pid: int | None, proc_start: int | None) -> bool:
        proc = self._procs.get(replica_id)
        if proc is not None:
            return proc.poll() is None
        return procs.is_worker(pid, proc_start, replica_id)

    def _pid(self, replica_id: int, pid: int | None) -> int | None:
        proc = self._procs.get(replica_id)
        return proc.pid if proc is not None else pid

    # --- start / stop -----------------------------------------------------------------------

    def start(self, pool: WarmPool, devices: str = "") -> int:
        """Insert the replica row, then spawn its worker; returns the replica id. `devices`:
        the GPU indices it may use ("0,1"; "" for none: it sees no GPU at all)."""
        with self.store.write() as conn:
            data_root, code_root = _roots(conn)
            replica_id = conn.execute(
                "INSERT INTO replicas (pool_id, spec_hash, state, started_at, devices) "
                "VALUES (?, ?, 'starting', ?, ?)",
                (pool.id, db.spec_hash(pool), db.now_rfc3339(), devices)).lastrowid
            assert replica_id is not None
            log_path = self.state_dir / "logs" / pool.id / f"{replica_id}.log"
            conn.execute("UPDATE replicas SET log_path = ? WHERE id = ?",
                         (str(log_path), replica_id))
        args = ["--pool", pool.id, "--replica", str(replica_id), "--db", str(self.store.path),
                "--entrypoint", pool.entrypoint, "--code-root", code_root,
                "--data-root", data_root, "--model", pool.model_path,
                "--digest", pool.model_digest]
        try:
            proc = procs.spawn(args, log_path, env=procs.worker_env(devices))
        except OSError as exc:
            with self.store.write() as conn:
                conn.execute("UPDATE replicas SET state = 'failed', error = ? WHERE id = ?",
                             (f"cannot start worker: {exc}", replica_id))
            return replica_id
        self._procs[replica_id] = proc
        with self.store.write() as conn:
            conn.execute("UPDATE replicas SET pid = ?, proc_start = ? WHERE id = ?",
                         (proc.pid, procs.start_time(proc.pid), replica_id))
            gpus = f" on GPU {devices}" if devices else ""
            db.add_event(conn, f"started replica {replica_id} (pid {proc.pid}){gpus}", pool.id,
                         replica_id)
        return replica_id

    def stop(self, replica_ids: list[int], why: str) -> None:
        """SIGTERM now; reap() sends SIGKILL if the worker outlives the grace period."""
        signals: list[int] = []
        with self.store.write() as conn:  # first the record (no longer ready), then the signal
            for replica_id in replica_ids:
                row = conn.execute("SELECT * FROM replicas WHERE id = ?",
                                   (replica_id,)).fetchone()
                if row is None or row["state"] == "stopping":
                    continue
                pid = self._pid(replica_id, row["pid"])
                if self._alive(replica_id, row["pid"], row["proc_start"]) and pid:
                    signals.append(pid)
                conn.execute("UPDATE replicas SET state = 'stopping', stopping_since = ? "
                             "WHERE id = ?", (time.time(), replica_id))
                db.add_event(conn, f"stopping replica {replica_id} (pid {pid}): {why}",
                             row["pool_id"], replica_id)
        for pid in signals:
            procs.send(pid, signal.SIGTERM)

    def set_pool_error(self, pool_id: str, error: str | None, *, failing: bool = True) -> None:
        """Record the pool's error; `error_since` (when it started failing) only for a
        failure, not for a pool that merely waits for room in its caller's quota."""
        with self.store.write() as conn:
            conn.execute("UPDATE pools SET error = ?, error_since = CASE WHEN ? THEN "
                         "COALESCE(error_since, ?) ELSE NULL END WHERE id = ?",
                         (error, error is not None and failing, time.time(), pool_id))
            db.add_event(conn, f"pool error: {error}" if error else "pool error cleared",
                         pool_id)

    # --- watching ---------------------------------------------------------------------------

    def reap(self, warmups: dict[str, float] | None = None) -> list[tuple[str, str, str]]:
        """Remove rows of exited workers; (pool id, spec hash, reason) for each failure.
        `warmups`: seconds each pool's replicas may take to warm up (warmupTimeout)."""
        with self.store.read() as conn:
            rows = conn.execute("SELECT * FROM replicas ORDER BY id").fetchall()
        failures = []
        now = time.time()
        for row in rows:
            rid = row["id"]
            if self._alive(rid, row["pid"], row["proc_start"]):
                self._note_state(row)
                self._enforce_deadlines(row, now, (warmups or {}).get(
                    row["pool_id"], DEFAULT_WARMUP_TIMEOUT))
                continue
            if row["pid"] is None and rid not in self._procs and \
                    now - _epoch(row["started_at"]) < UNREPORTED_GRACE:
                continue
            reason = self._forget(row)
            if reason is not None:
                failures.append((row["pool_id"], row["spec_hash"], reason))
        return failures

    def _note_state(self, row: sqlite3.Row) -> None:
        """Record the transitions workers make themselves (warming, ready) as events."""
        if self._seen.get(row["id"]) == row["state"]:
            return
        self._seen[row["id"]] = row["state"]
        if row["state"] in ("warming", "ready"):
            detail = f" on port {row['port']} with {row['model_digest']}" \
                if row["state"] == "ready" else ""
            with self.store.write() as conn:
                db.add_event(conn, f"replica {row['id']} (pid {row['pid']}) is "
                                   f"{row['state']}{detail}", row["pool_id"], row["id"])

    def _enforce_deadlines(self, row: sqlite3.Row, now: float, warmup: float) -> None:
        rid, pid = row["id"], self._pid(row["id"], row["pid"])
        state = row["state"]
        if state == "stopping" and now - (row["stopping_since"] or now) > self.grace:
            if pid:
                procs.send(pid, signal.SIGKILL)
        elif state in ("starting", "warming") and now - _epoch(row["started_at"]) > warmup:
            with self.store.write() as conn:
                conn.execute("UPDATE replicas SET state = 'failed', error = ? WHERE id = ?",
                             (f"not warm within {warmup:g}s (the version's warmupTimeout); "
                              f"stopped it", rid))
            if pid:
                procs.send(pid, signal.SIGKILL)

    def _forget(self, row: sqlite3.Row) -> str | None:
        """Delete an exited worker's row; the failure reason, or None for a planned stop."""
        rid, pid, state = row["id"], row["pid"], row["state"]
        proc = self._procs.pop(rid, None)
        self._seen.pop(rid, None)
        how = procs.describe_exit(proc.returncode if proc is not None else None)
        log = row["log_path"]
        reason: str | None
        if state == "stopping":
            reason, message = None, f"replica {rid} (pid {pid}) stopped"
        elif state == "failed":
            reason = f"{row['error']} (log: {log})"
            message = f"replica {rid} (pid {pid}) failed to warm up: {reason}"
        elif state == "ready":
            reason = f"replica {rid} (pid {pid}) {how} while serving; replacing it"
            message = reason
        else:
            reason = f"replica {rid} (pid {pid}) {how} during warm-up (log: {log})"
            message = reason
        with self.store.write() as conn:
            conn.execute("DELETE FROM replicas WHERE id = ?", (rid,))
            db.add_event(conn, message, row["pool_id"], rid)
        return reason

    # --- agent start and stop ---------------------------------------------------------------

    def adopt(self) -> None:
        """After an agent restart: keep live workers, clear rows nobody can identify."""
        with self.store.write() as conn:
            rows = conn.execute("SELECT * FROM replicas").fetchall()
            alive = [r for r in rows if procs.is_worker(r["pid"], r["proc_start"], r["id"])]
            unknown = [r["id"] for r in rows if r["pid"] is None]
            conn.executemany("DELETE FROM replicas WHERE id = ?", [(i,) for i in unknown])
            db.add_event(conn, f"agent started (pid {os.getpid()}): adopted {len(alive)} live "
                               f"worker(s) of {len(rows)} recorded")

    def shutdown(self) -> None:
        """Stop every worker of this state: SIGTERM, SIGKILL after the grace period."""
        with self.store.read() as conn:
            rows = conn.execute("SELECT * FROM replicas").fetchall()
        live = {r["id"]: self._pid(r["id"], r["pid"]) for r in rows
                if self._alive(r["id"], r["pid"], r["proc_start"])}
        for pid in live.values():
            if pid:
                procs.send(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        by_id = {r["id"]: r for r in rows}
        while live and time.monotonic() < deadline:
            live = {i: p for i, p in live.items()
                    if self._alive(i, by_id[i]["pid"], by_id[i]["proc_start"])}
            time.sleep(0.05)
        for pid in live.values():
            if pid:
                procs.send(pid, signal.SIGKILL)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()
        with self.store.write() as conn:
            conn.execute("DELETE FROM replicas")
            db.add_event(conn, f"agent stopped: {len(rows)} worker(s) stopped")


def _roots(conn: sqlite3.Connection) -> tuple[str, str]:
    """Where data:// and entrypoints resolve, as the last apply recorded them."""
    config_dir = db.get_meta(conn, "config_dir") or "."
    data = db.get_meta(conn, "data_root") or str(Path(config_dir) / "data")
    code = db.get_meta(conn, "code_root") or str(Path(config_dir) / "src")
    return str(Path(data).resolve()), str(Path(code).resolve())


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
