"""The level-triggered reconcile loop: triggers in, passes out, never dies.

Every pass re-reads the source and reconciles the whole desired state, so a
missed trigger costs at most one interval and drift is corrected by the same
code that applies commits. Triggers: the poll interval (±10 % jitter, so a
fleet of daemons does not hit the Git server in step), a webhook, a file
change, and a periodic resync. What a pass does is injected (`reconcile`),
which keeps this module free of the pipeline and testable with real Git
repositories and a plain function.

Failures are sorted by what helps: an invalid config or a refused plan is
final for its commit (retrying cannot fix it; the next commit or a resync
is looked at), while Git and runtime errors back off exponentially up to a
cap and retry; every retry fetches again, so a newer commit wins.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from reconciler.backoff import Backoff
from reconciler.daemon.logs import pass_context, set_commit
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.state import (
    APPLIED,
    ERROR,
    FAILED,
    FINAL_FAILURES,
    GOOD,
    INVALID,
    SKIPPED,
    DaemonState,
    Outcome,
    PassRecord,
    now_iso,
    reasons,
)
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.sources.base import Snapshot, Source

log = logging.getLogger("reconciler.daemon")

Reconcile = Callable[[Snapshot], Outcome]
LEADER_POLL = 0.5  # seconds between checks while another daemon leads (a trigger wakes it)


class Loop:
    def __init__(
        self,
        source: Source,
        reconcile: Reconcile,
        state: DaemonState,
        metrics: Metrics,
        *,
        interval: float = 30.0,
        resync: float = 300.0,
        backoff_max: float = 300.0,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.source, self.reconcile = source, reconcile
        self.state, self.metrics = state, metrics
        self.interval, self.resync = interval, resync
        self.backoff = Backoff(1.0, backoff_max)  # 1 s doubling up to the cap
        self.leading = leading  # no pass runs while this is False (another daemon leads)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pending: str | None = None
        self._lock = threading.Lock()
        self._passes = 0
        self.running = False

    # -- triggers ---------------------------------------------------------

    def trigger(self, reason: str) -> None:
        """Run a pass as soon as the current one (if any) is done."""
        with self._lock:
            self._pending = reason
        self._wake.set()

    def stop(self) -> None:
        """Stop after the current pass; a pass in progress is allowed to finish."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop -----------------------------------------------------------

    def run(self) -> None:
        """Pass, wait for a trigger or a timer, repeat until stopped."""
        self.running = True
        try:
            reason = "start"
            next_resync = time.monotonic() + self.resync
            while not self._stopping.is_set():
                if not self.leading():
                    self._wait(LEADER_POLL)  # woken at once when the Lease is acquired
                    reason = "leader"
                    continue
                if time.monotonic() >= next_resync:
                    reason = "resync"
                if reason == "resync":
                    next_resync = time.monotonic() + self.resync
                    full_next = getattr(self.reconcile, "full_next", None)
                    if full_next is not None:
                        full_next()  # an incremental reconcile re-reads everything
                record = self.run_pass(reason)
                retry = record.result in (ERROR, FAILED)
                if retry:
                    delay = self.backoff.next()
                    log.info("retrying in %.0fs", delay, extra={"backoff": delay})
                else:
                    self.backoff.reset()
                    delay = self.interval * random.uniform(0.9, 1.1)
                self.source.settle()  # idle work, off the next pass's path
                delay = max(0.0, min(delay, next_resync - time.monotonic()))
                reason = self._wait(delay) or ("retry" if retry else "poll")
        finally:
            self.running = False

    def _wait(self, timeout: float) -> str | None:
        """Wait for a trigger; its reason, or None when the timer ran out."""
        fired = self._wake.wait(timeout)
        with self._lock:
            self._wake.clear()
            reason, self._pending = self._pending, None
        if not fired:
            return None
        return reason or ("stop" if self._stopping.is_set() else "trigger")

    def run_pass(self, trigger: str) -> PassRecord:
        """One pass: fetch, then the injected reconcile; every failure is caught and recorded."""
        with self._lock:
            self._passes += 1
            pass_id = self._passes
        with pass_context(pass_id):
            started, start = now_iso(), time.monotonic()
            revision: str | None = None
            before = self.state.last_applied
            log.info("pass started", extra={"trigger": trigger})
            try:
                snapshot = self.source.fetch()
                revision = snapshot.revision
                set_commit(snapshot.short)
                self.state.seen(revision)
                snapshot, outcome = self._reconcile(snapshot, trigger)
                revision = snapshot.revision
            except ConfigError as exc:
                # the first few diagnostics: enough to find and fix the commit
                outcome = Outcome(INVALID, error=reasons(exc.diagnostics, fallback=str(exc)))
            except ReconcilerError as exc:
                outcome = Outcome(ERROR, error=str(exc), retry=True)
            except Exception as exc:  # a bug must not kill the daemon; say what it was
                log.exception("pass crashed")
                outcome = Outcome(ERROR, error=f"internal error: {exc!r}", retry=True)
            if outcome.result in FINAL_FAILURES:
                self._restore(before, revision)
            # Drift: the config did not move, yet the live state had to. Completing an
            # earlier version move (a delete waiting for its new pool) is not drift.
            drift = outcome.drift_count > 0 and revision is not None and revision == before
            record = PassRecord(pass_id, trigger, revision, outcome.result, started,
                                time.monotonic() - start, dict(outcome.summary), outcome.error,
                                drift)
            self._account(record, outcome)
            return record

    def _reconcile(self, snapshot: Snapshot, trigger: str) -> tuple[Snapshot, Outcome]:
        """Reconcile the head, unless it already failed for good: then skip it, or on a
        resync re-apply the last good commit so drift is still corrected."""
        bad = self.state.known_bad(snapshot.revision)
        if bad and trigger != "resync":
            return snapshot, Outcome(SKIPPED)
        good = self.state.last_applied
        restored = self.source.checkout(good) if bad and good is not None else None
        if restored is None:
            snapshot = self.source.checkout(snapshot.revision) or snapshot
            return snapshot, self.reconcile(snapshot)
        log.info("head %s is known bad; the resync re-applies the last good %s",
                 snapshot.short, restored.short)
        set_commit(restored.short)
        return restored, self.reconcile(restored)

    def _restore(self, good: str | None, bad: str | None) -> None:
        """Put the last good commit's files back, so the workers never run a bad commit's code."""
        if good is None or good == bad:
            return
        try:
            self.source.checkout(good)
        except ReconcilerError as exc:
            log.warning("could not restore the last good commit: %s", exc)

    def _account(self, record: PassRecord, outcome: Outcome) -> None:
        self.state.record(record, outcome)
        self.metrics.record_pass(record.result, record.duration)
        if record.drift:
            self.metrics.drift.inc()
        if outcome.result in (APPLIED, FAILED):
            self.metrics.record_actions(outcome.summary)
        if outcome.pools is not None:
            self.metrics.record_pools(outcome.pools.get("desired", 0),
                                      outcome.pools.get("ready", 0))
        if record.result in GOOD:
            self.metrics.last_applied.set(time.time())
        fields = {"result": record.result, "duration": round(record.duration, 3),
                  "actions": outcome.action_count}
        if record.drift:
            log.warning("drift detected: the live state changed although the config did not")
        if outcome.error:
            level = logging.INFO if record.result == SKIPPED else logging.ERROR
            log.log(level, "pass %s: %s", record.result, outcome.error, extra=fields)
        else:
            log.info("pass %s", record.result, extra=fields)
