"""One active daemon per cluster: hold a Lease while reconciling, wait for it otherwise.

A background thread keeps the state of the Lease current:
- not the leader: try to acquire every `retry` seconds (about 2 s), logging
  who holds it whenever that changes; on success, tell the loop (a pass
  starts at once);
- the leader: renew every duration/3. When a renew is refused (someone else
  holds the Lease now), or no renew has succeeded for a whole duration (the
  API server is unreachable, so others may already see it expired), this
  process is no longer the leader: `gate()` closes at once, so the runtime
  writes nothing more and stops waiting, and the loop runs no new pass until
  the Lease is acquired again.

On shutdown the Lease is released, so a standby daemon takes over at once
instead of waiting for it to expire.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from reconciler.errors import ReconcilerError

log = logging.getLogger("reconciler.daemon.leader")
RETRY = 2.0  # seconds between attempts to acquire while another daemon leads
LEASE_NAME = "reconciler"
LEASE_NAMESPACE = "reconciler-system"


class LeaseLike(Protocol):
    namespace: str
    name: str
    identity: str
    duration: int

    def acquire(self) -> bool: ...
    def renew(self) -> bool: ...
    def release(self) -> None: ...
    def holder(self) -> str | None: ...
    def close(self) -> None: ...


def identity() -> str:
    """hostname:pid, unique per daemon process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    def __init__(self, lease: LeaseLike, *, retry: float = RETRY,
                 on_acquired: Callable[[], None] = lambda: None) -> None:
        self.lease = lease
        self.renew_every = max(lease.duration / 3, 0.2)
        self.retry = min(retry, self.renew_every)
        self.on_acquired = on_acquired
        self._lock = threading.Lock()
        self._leading = False
        self._renewed_at = 0.0  # monotonic time of the last successful acquire or renew
        self._holder: str | None = None
        self._stopping = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    # --- what the rest of the daemon asks ----------------------------------------------------

    @property
    def leading(self) -> bool:
        """Holding the Lease, renewed within its duration."""
        with self._lock:
            fresh = time.monotonic() - self._renewed_at < self.lease.duration
            return self._leading and fresh

    def gate(self) -> str | None:
        """None while this daemon may write to the cluster; else why it may not."""
        if self._stopping.is_set():
            return "the daemon is stopping"
        if not self.leading:
            return f"this daemon is not the leader ({self._held_by()})"
        return None

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            holder = self._holder
        return {"leader": self.leading,
                "lease": {"namespace": self.lease.namespace, "name": self.lease.name,
                          "identity": self.lease.identity, "holder": holder,
                          "durationSeconds": self.lease.duration}}

    # --- life cycle ------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """One attempt; True when this daemon leads now. Errors are logged, not raised."""
        try:
            won = self.lease.acquire()
            holder = self.lease.identity if won else self.lease.holder()
        except ReconcilerError as exc:
            log.warning("cannot acquire the lease %s: %s", self._where(), exc)
            return False
        with self._lock:
            changed = holder != self._holder
            self._holder = holder
            if won:
                self._leading, self._renewed_at = True, time.monotonic()
        if won:
            log.info("became the leader (lease %s, identity %s)", self._where(),
                     self.lease.identity)
        elif changed:
            log.info("not the leader: the lease %s is held by %s; not reconciling, retrying "
                     "every %.0fs", self._where(), holder or "nobody", self.retry)
        return won

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Close the gate (no new writes, no more waiting) and stop renewing; the Lease is
        kept until stop(), so nobody else writes while the current action finishes."""
        self._stopping.set()

    def stop(self) -> None:
        """Close the gate, stop renewing and give the Lease up. Idempotent."""
        self.close()
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        if self._leading:
            try:
                self.lease.release()
                log.info("released the lease %s", self._where())
            except ReconcilerError as exc:
                log.warning("could not release the lease %s (it expires in %ds): %s",
                            self._where(), self.lease.duration, exc)
        with self._lock:
            self._leading = False
        self.lease.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self._leading:
                wait = self._renew()
            else:
                wait = self.renew_every if self._acquired() else self.retry
            self._stopping.wait(wait)

    def _acquired(self) -> bool:
        won = self.try_acquire()
        if won:
            self.on_acquired()
        return won

    def _renew(self) -> float:
        """One renew; the seconds until the next attempt."""
        try:
            kept = self.lease.renew()
        except ReconcilerError as exc:
            if time.monotonic() - self._renewed_at < self.lease.duration:
                log.warning("cannot renew the lease %s (retrying): %s", self._where(), exc)
                return self.retry / 2
            kept = False
        if kept:
            with self._lock:
                self._renewed_at = time.monotonic()
            return self.renew_every
        with self._lock:
            self._leading = False
        holder = self._safe_holder()
        with self._lock:
            self._holder = holder
        log.warning("lost the lease %s (now held by %s): stopped reconciling until it is "
                    "acquired again", self._where(), holder or "nobody")
        return self.retry

    def _safe_holder(self) -> str | None:
        try:
            return self.lease.holder()
        except ReconcilerError:
            return None

    def _held_by(self) -> str:
        with self._lock:
            holder = self._holder
        return f"the lease {self._where()} is held by {holder or 'nobody'}"

    def _where(self) -> str:
        return f"{self.lease.namespace}/{self.lease.name}"
