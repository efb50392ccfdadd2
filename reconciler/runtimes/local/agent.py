"""The agent: the local runtime's node (a kubelet for worker processes).

Each pass it reads the store and makes the processes match it: starts missing
replicas, replaces crashed ones (with backoff), stops extra ones gracefully
(SIGTERM, SIGKILL after a grace period) and ones not warm within their
version's warmupTimeout, rolls a changed spec one replica at a time, enforces
quotas and the nodes' pods (older pools first: a newer pool gets what is
left), gives each replica of a gpu pool its own GPUs (CUDA_VISIBLE_DEVICES;
cpu replicas see none), and records every state change as an event. Every
write is one transaction and every decision is re-derived from the store, so
the agent can be killed at any moment: on start it adopts the workers that are still alive (same
pid, start time and replica id) and clears the rest.

    reconciler agent --state DIR    (or python -m reconciler.runtimes.local.agent --state DIR)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.backoff import Backoff
from reconciler.errors import ReconcilerError, RuntimeFault
from reconciler.ownership import untrusted
from reconciler.runtimes.local import procs
from reconciler.runtimes.local import store as db
from reconciler.runtimes.local.lock import StateLock
from reconciler.runtimes.local.nodes import gpu_indices
from reconciler.runtimes.local.rollout import LIVE, Allotment, Rep, allot, step
from reconciler.runtimes.local.supervise import Supervisor
from reconciler.states import Quota, WarmPool

NO_QUOTA_ROOM = 1 << 30
LOCK_PATIENCE = 0.5  # seconds: `status` probes agent.lock for an instant (store.agent_info)
log = logging.getLogger("reconciler.agent")
logging.getLogger(db.EVENTS_LOGGER).setLevel(logging.WARNING)  # run_standalone: INFO


@dataclass
class PoolBackoff:
    """Capped exponential delay between attempts of a failing pool spec."""

    spec_hash: str
    delays: Backoff = field(default_factory=lambda: Backoff(0.25, 30.0))
    next_at: float = 0.0
    error: str | None = None

    def fail(self, error: str | None) -> float:
        delay = self.delays.next()
        self.next_at = time.monotonic() + delay
        if error:
            self.error = error
        return delay

    def succeeded(self) -> None:
        self.delays.reset()
        self.error = None


class Agent:
    """Agent(state_dir).start() / .stop(); or .run(stop_event) in the calling thread."""

    def __init__(self, state_dir: Path, *, poll_interval: float = 0.5,
                 grace: float = 5.0) -> None:
        self.state_dir = Path(state_dir)
        _trusted(self.state_dir)
        self.poll_interval = poll_interval
        self.store = db.Store(self.state_dir)
        self.supervisor = Supervisor(self.store, self.state_dir, grace=grace)
        self._lock = StateLock(self.state_dir / "agent.lock", "reconciler agent")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff: dict[str, PoolBackoff] = {}
        self._pass_lock = threading.Lock()
        self._warmups: dict[str, float] = {}  # pool id -> warmupTimeout, as of the last pass
        self.gpus = gpu_indices()  # this machine's GPUs; none: gpu pools run on the CPU

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in a background thread. LockHeld if another agent runs on this state."""
        self._begin()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_locked, args=(self._stop,),
                                        name="reconciler-agent", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and every worker of this state (gracefully); no orphans."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self, stop_event: threading.Event) -> None:
        """The loop in the calling thread until `stop_event` is set; then stop the workers."""
        self._begin()
        log.info("agent running on %s (pid %d, %s)", self.state_dir, os.getpid(),
                 f"GPUs {','.join(map(str, self.gpus))}" if self.gpus else "no GPUs")
        self._run_locked(stop_event)

    def wake(self) -> None:
        self._wake.set()

    def _begin(self) -> None:
        """Lock the state, adopt surviving workers and beat once, before returning: a
        caller that starts the agent may rely on it being seen as running."""
        self._lock.acquire(timeout=LOCK_PATIENCE)
        try:
            self.supervisor.adopt()
            self._heartbeat()
        except BaseException:
            self._lock.release()
            raise

    def _run_locked(self, stop_event: threading.Event) -> None:
        try:
            while not stop_event.is_set() and not self._stop.is_set():
                try:
                    self.reconcile_once()
                except Exception:  # a busy store, a full disk: never take the workers down
                    log.exception("agent pass failed; retrying in %.1fs", self.poll_interval)
                self._wake.wait(self.poll_interval)
                self._wake.clear()
        finally:
            try:
                self.supervisor.shutdown()
                with self.store.write() as conn:
                    conn.execute("UPDATE agent SET heartbeat = NULL WHERE id = 1")
            finally:
                self.store.close()
                self._lock.release()

    # --- one pass ---------------------------------------------------------------------------

    def reconcile_once(self) -> None:
        """Heartbeat, reap exits, then start/stop replicas for every pool.
        Serialised: a pass triggered by hand never races the loop's own."""
        with self._pass_lock:
            self._reconcile()

    def _reconcile(self) -> None:
        self._heartbeat()
        for pool_id, spec_hash, reason in self.supervisor.reap(self._warmups):
            self._failed(pool_id, spec_hash, reason)
        with self.store.read() as conn:
            pools = db.load_pools(conn, oldest_first=True)  # the order allot() needs
            quotas = {r["account"]: Quota(r["account"], r["max_engines"], r["max_gpus"])
                      for r in conn.execute("SELECT * FROM quotas")}
            pods = {r["processor"]: r["pods"] for r in conn.execute(
                "SELECT processor, SUM(pods) AS pods FROM nodes GROUP BY processor")}
            rows = conn.execute("SELECT id, pool_id, spec_hash, state, devices FROM replicas "
                                "ORDER BY id").fetchall()
        self._warmups = {pool.id: pool.warmup_timeout for pool, _ in pools}
        held = {int(d) for r in rows for d in (r["devices"] or "").split(",") if d.isdigit()}
        rows = [r for r in rows if r["state"] != "stopping"]  # stopping ones still hold GPUs
        known = {pool.id for pool, _ in pools}
        orphans = [r["id"] for r in rows if r["pool_id"] not in known]
        if orphans:
            self.supervisor.stop(orphans, "its pool was deleted")
        allotments = allot([pool for pool, _ in pools], quotas, pods or None)
        live_by_caller = _live_by(pools, rows, lambda pool: pool.caller)
        live_by_class = _live_by(pools, rows, lambda pool: pool.processor)
        by_pool: dict[str, list[Rep]] = {}
        for r in rows:
            by_pool.setdefault(r["pool_id"], []).append(Rep(r["id"], r["spec_hash"], r["state"]))
        for pool, row in pools:
            quota = quotas.get(pool.caller)
            room = NO_QUOTA_ROOM if quota is None else quota.max_engines - live_by_caller.get(
                pool.caller, 0)
            if pods:
                room = min(room, pods.get(pool.processor, 0) - live_by_class.get(
                    pool.processor, 0))
            if self._on_devices(pool):
                room = min(room, len(self._free(held)) // pool.gpu)
            change = self._sync_pool(pool, row, by_pool.get(pool.id, []),
                                     allotments[pool.id], room, held)
            live_by_caller[pool.caller] = live_by_caller.get(pool.caller, 0) + change
            live_by_class[pool.processor] = live_by_class.get(pool.processor, 0) + change

    def _on_devices(self, pool: WarmPool) -> bool:
        """Do `pool`'s replicas run on GPUs of this machine? Not a cpu pool, nor a gpu pool
        where the machine has none (an emulated gpu node: it runs on the CPU)."""
        return pool.processor == "gpu" and pool.gpu > 0 and bool(self.gpus)

    def _free(self, held: set[int]) -> list[int]:
        return [index for index in self.gpus if index not in held]

    def _devices(self, pool: WarmPool, held: set[int]) -> str | None:
        """The GPUs a new replica of `pool` gets ("" for none), taken from `held`'s
        complement and added to it; None when not enough of them are free."""
        if not self._on_devices(pool):
            return ""
        free = self._free(held)
        if len(free) < pool.gpu:
            return None
        chosen = free[:pool.gpu]
        held.update(chosen)
        return ",".join(map(str, chosen))

    def _start(self, pool: WarmPool, count: int, held: set[int]) -> int:
        """Start up to `count` replicas, as long as GPUs are free; how many started."""
        for started in range(count):
            devices = self._devices(pool, held)
            if devices is None:
                return started
            self.supervisor.start(pool, devices)
        return count

    def _gpu_shortage(self, pool: WarmPool, held: set[int]) -> str | None:
        """Why a replica of `pool` cannot start for want of GPUs, or None."""
        if not self._on_devices(pool) or len(self._free(held)) >= pool.gpu:
            return None
        return (f"waiting for {pool.gpu} free GPU(s) per replica: "
                f"{len(held & set(self.gpus))} of this machine's {len(self.gpus)} are in use")

    def _sync_pool(self, pool: WarmPool, row: sqlite3.Row, reps: list[Rep],
                   allotment: Allotment, room: int, held: set[int]) -> int:
        """Start and stop this pool's replicas; the change in its live replica count."""
        want = allotment.replicas
        current = row["spec_hash"]
        backoff = self._backoff.get(pool.id)
        if backoff is None or backoff.spec_hash != current:
            backoff = self._backoff[pool.id] = PoolBackoff(current)
        ready = sum(1 for r in reps if db.current_ready(r.state, r.spec_hash, current))
        if ready:
            backoff.succeeded()
        may_start = time.monotonic() >= backoff.next_at
        decision = step(current, want, reps, in_place=bool(row["in_place"]), room=room,
                        may_start=may_start)
        if decision.stops:
            self.supervisor.stop(list(decision.stops), "rolling replace or scale down")
        started = self._start(pool, decision.starts, held)
        current_live = sum(1 for r in reps if r.state in LIVE and r.spec_hash == current)
        gpu_wait = self._gpu_shortage(pool, held) if current_live + started < want else None
        converged = ready >= want and all(r.spec_hash == current for r in reps)
        # A failure (a crash loop, a bad digest) outranks a shortfall of quota, pods or
        # GPUs. Only a failure is "failing" (error_since, which wait_ready gives up on): a
        # pool short of room is waiting for it, as the new pool of a handover is while
        # the old one shrinks.
        earlier = row["error"] if row["error_since"] is not None else None
        failure = None if converged else backoff.error or earlier
        error = failure or allotment.error or gpu_wait
        if error != row["error"] or (failure is not None) != (row["error_since"] is not None):
            self.supervisor.set_pool_error(pool.id, error, failing=failure is not None)
        return started - len(decision.stops)  # stops are of live replicas only

    def _failed(self, pool_id: str, spec_hash: str, reason: str) -> None:
        backoff = self._backoff.get(pool_id)
        if backoff is None or backoff.spec_hash != spec_hash:
            backoff = self._backoff[pool_id] = PoolBackoff(spec_hash)
        delay = backoff.fail(reason)
        with self.store.write() as conn:
            db.add_event(conn, f"{reason}; next attempt in {delay:.1f}s", pool_id)

    def _heartbeat(self) -> None:
        with self.store.write() as conn:
            conn.execute(
                "INSERT INTO agent (id, pid, proc_start, started_at, heartbeat) "
                "VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, "
                "proc_start = excluded.proc_start, heartbeat = excluded.heartbeat, "
                "started_at = CASE WHEN agent.pid = excluded.pid THEN agent.started_at "
                "ELSE excluded.started_at END",
                (os.getpid(), procs.start_time(os.getpid()), db.now_rfc3339(), time.time()))


def _live_by(pools: list[tuple[WarmPool, sqlite3.Row]], rows: list[sqlite3.Row],
             key: Callable[[WarmPool], str]) -> dict[str, int]:
    """Live replicas per key of their pool (its caller, its processor class)."""
    key_of = {pool.id: key(pool) for pool, _ in pools}
    counts: dict[str, int] = {}
    for row in rows:
        found = key_of.get(row["pool_id"])
        if found is not None and row["state"] in LIVE:
            counts[found] = counts.get(found, 0) + 1
    return counts


def _trusted(state_dir: Path) -> None:
    """The store names the code the agent runs (entrypoints, code and data roots): a state
    directory or store another user may write would let them run code as this user."""
    for path, directory in ((state_dir, True), (state_dir / db.DB_NAME, False)):
        if not directory and not path.is_file():
            continue  # absent, or not a file: the store says so in its own words
        why = untrusted(path, directory=directory)
        if why:
            raise RuntimeFault(f"the agent will not run from {path}: it {why}, and the store "
                               "names the code the agent runs; the state must be this "
                               "user's alone (chown it, or chmod go-w)")


def run_standalone(state_dir: Path, *, poll_interval: float = 0.5, grace: float = 5.0) -> None:
    """The agent alone in this process (`reconciler agent`) until SIGTERM or SIGINT, then
    every worker of the state stops. LockHeld when another agent runs on the state."""
    stop = threading.Event()
    logging.getLogger(db.EVENTS_LOGGER).setLevel(logging.INFO)  # alone: its events are its log
    previous = {signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        Agent(state_dir, poll_interval=poll_interval, grace=grace).run(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("agent stopped; the workers of %s are gone", state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local runtime's agent standalone "
                                                 "(as `reconciler agent`).")
    parser.add_argument("--state", required=True, type=Path, help="the state directory")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        run_standalone(args.state, poll_interval=args.poll_interval)
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


__all__ = ["Agent", "main", "run_standalone"]

if __name__ == "__main__":
    sys.exit(main())
