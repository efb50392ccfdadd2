"""What one daemon pass does to a snapshot: load, validate, plan, guard, apply, record.

The loop decides when; this decides what. It is the same pipeline as
`reconciler apply --auto-approve` (pipeline.plan_config, then apply.execute),
so the daemon never applies anything a human running `plan` would not see.
Around the whole pass it holds state_dir/apply.lock, so a manual `apply` on
the same state directory and the daemon never interleave their writes (on
Kubernetes that is only this machine's state directory: see the README).

Runtimes are opened with reconciler.runtimes.open_runtime: one per pass, and
one long-lived runtime for the probe's reads between passes (closed by close()).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.config.model import Config, Settings
from reconciler.daemon.incremental import Incremental, Loaded
from reconciler.daemon.state import (
    APPLIED,
    DEFERRED,
    FAILED,
    REFUSED,
    UNCHANGED,
    Outcome,
    reasons,
)
from reconciler.errors import ConfigError, Diagnostic, ReconcilerError
from reconciler.gcpause import paused
from reconciler.plan.plans import Op, Plan
from reconciler.runtimes import FullRuntime, open_runtime
from reconciler.runtimes.local.lock import StateLock
from reconciler.sources.base import Snapshot
from reconciler.states import LiveState, pools_json

log = logging.getLogger("reconciler.daemon.pass")
DONE = ("created", "configured", "deleted", "failed")  # entry outcomes that did something


@dataclass
class PassSettings:
    runtime: str = "local"
    state_dir: Path = Path(".reconciler")
    kubeconfig: Path | None = None
    context: str | None = None
    data_root: Path | None = None
    code_root: Path | None = None
    wait_timeout: float = 300.0
    allow_mass_delete: bool = False
    allow_reduced_capacity: bool = False
    lock_timeout: float = 10.0
    watch: float | None = None  # Kubernetes: watch caches relisted this often (the resync)


def pools_summary(live: LiveState) -> dict[str, Any]:
    """Warm replicas wanted and ready, in total and per pool: /status and the gauges."""
    items = pools_json(live)
    return {"desired": sum(i["replicas"] for i in items),
            "ready": sum(i["ready"] for i in items), "items": items}


def pending_moves(plan: Plan) -> int:
    """Actions completing earlier version moves: deletes waiting for a new pool (the plan
    JSON's `waitFor`). On an unchanged commit they are still the plan, not drift."""
    return sum(1 for a in plan.actions if a.op is Op.DELETE and a.wait_for)


def _log_entry(entry: Any) -> None:
    """One line per finished action, tagged with the pass and commit like every line."""
    level = logging.WARNING if str(entry.outcome) in ("failed", "deferred") else logging.INFO
    log.log(level, "%s %s %s: %s%s", entry.op, entry.kind, entry.action_id, entry.outcome,
            f" ({entry.message})" if entry.message else "")


def _kubernetes(settings: Settings | None) -> object:
    return settings.kubernetes if settings is not None else None


class PipelinePass:
    """The `reconcile` callable the loop runs: Snapshot -> Outcome."""

    def __init__(self, settings: PassSettings,
                 gate: Callable[[], str | None] | None = None) -> None:
        """`gate()`: None while this daemon may write to the runtime, else why not (it
        lost its Lease, or is stopping); the runtime then writes nothing more."""
        self.settings = settings
        self.gate = gate
        self._probe: FullRuntime | None = None  # observe()'s runtime, kept open
        self._probe_lock = threading.Lock()
        self._settings: Settings | None = None  # the last pass's (they name the instance)
        self._probe_settings: Settings | None = None
        # Told what each pass planned (pipeline.Planned), for the dashboard; it only keeps
        # references, so a pass pays nothing for it.
        self.on_planned: Callable[[Any], None] | None = None
        self._incremental: Incremental | None = None  # made at the first pass
        self._full = True
        self._settle = False  # collect and freeze after this pass (see __call__)
        self._warned: set[str] = set()  # the last observed pass's plan warnings

    def full_next(self) -> None:
        """Make the next pass a full one (the loop calls this on every resync): every file
        read again, the whole config checked, the live state observed."""
        self._full = True

    def __call__(self, snapshot: Snapshot) -> Outcome:
        with paused():  # see reconciler.gcpause
            outcome = self._pass(snapshot)
        if self._settle:
            # A full pass made ~10 objects per reservation that the daemon keeps: collect
            # once now and freeze the survivors, or the collector's next full sweep walks
            # them all in the middle of a later pass (seconds at 100,000 reservations).
            self._settle = False
            import deepdiff  # noqa: F401  (the first changed pool would import it mid-pass)

            gc.unfreeze()
            gc.collect()
            gc.freeze()
        return outcome

    def _pass(self, snapshot: Snapshot) -> Outcome:
        config_dir = snapshot.config_dir
        if not config_dir.is_dir():
            raise ConfigError([Diagnostic(f"config directory {config_dir.name!r} does not "
                                          f"exist at {snapshot.short}")])
        if self._incremental is None:
            self._incremental = Incremental(self._cache_dir(), code_root=self.settings.code_root,
                                            code_digests=self.settings.runtime == "local")
        full, self._full = self._full, False
        loaded = self._incremental.load(config_dir, snapshot.commit, full=full)
        self._settle = loaded.how in ("full", "files")
        self._settings = loaded.config.settings
        log.info("config loaded (%s)", loaded.how, extra={"load": loaded.how})
        closed = self.gate() if self.gate is not None else None
        if closed:
            raise ReconcilerError(f"pass not run: {closed}")
        lock = StateLock(self.settings.state_dir / "apply.lock", "reconciler daemon")
        lock.acquire(timeout=self.settings.lock_timeout)
        try:
            runtime = self._open_runtime(loaded.config, config_dir)
            try:
                return self._plan_and_apply(loaded, config_dir, snapshot, runtime)
            finally:
                runtime.close()
        finally:
            lock.release()

    def _plan_and_apply(self, loaded: Loaded, config_dir: Path, snapshot: Snapshot,
                        runtime: FullRuntime) -> Outcome:
        from reconciler.apply import execute
        from reconciler.pipeline import plan_config

        s = self.settings
        memory = self._incremental
        assert memory is not None
        live = memory.live(runtime)  # None: observe (and compare every pool)
        log.info("planning against the %s live state", "remembered" if live else "observed",
                 extra={"live": "remembered" if live else "observed"})
        planned = plan_config(config_dir, runtime, commit=snapshot.commit, config=loaded.config,
                              desired=loaded.desired, live=live,
                              candidates=loaded.candidates if live is not None else None,
                              rows=memory.rows, sums=loaded.sums, live_sums=memory.live_sums,
                              allow_mass_delete=s.allow_mass_delete,
                              allow_reduced_capacity=s.allow_reduced_capacity)
        plan = planned.plan
        if self.on_planned is not None:
            self.on_planned(planned)
        if live is None:  # a remembered live state carries no warnings of its own
            self._warn_new([str(w) for w in plan.warnings])
        summary = dict(plan.summary)
        # a remembered live state has no replica status: /status keeps the probe's pools
        seen = pools_summary(planned.live) if live is None else None
        if not plan.applyable:
            return Outcome(REFUSED, summary, error="plan refused: " + reasons(plan.errors),
                           pools=seen)
        # a drift repair held out of the plan (no room for its surge) leaves the live
        # state short of the desired one: observe it again next pass, never remember it
        settled = live is not None or not _held(planned.live, plan)
        if plan.empty:
            runtime.save_roots()  # every pass: a commit may change the catalog alone
            if settled:
                memory.applied(loaded.desired, runtime, loaded.sums)
            return Outcome(UNCHANGED, summary, pools=seen)
        log.info("applying %s", ", ".join(f"{n} {op}" for op, n in summary.items() if n),
                 extra={"summary": summary})
        # The same journal as `reconciler apply`: an apply interrupted by a crash or
        # a forced stop is reported, and resumed, by whichever runs next.
        result = execute(plan, runtime, wait_timeout=s.wait_timeout, journal_dir=s.state_dir,
                         progress=_log_entry)
        for warning in result.warnings:  # a damaged journal, set aside: never a failure
            log.warning("%s", warning)
        runtime.record_apply(result.to_json(), snapshot.commit)  # also saves the roots
        deferred = len(result.deferred)
        if result.ok and not deferred and settled:
            memory.applied(loaded.desired, runtime, loaded.sums)
        # after an incremental pass, observing 100,000 pools for /status would cost more
        # than the pass: the probe reads them when /status or /metrics is asked
        pools = pools_summary(runtime.observe()) if loaded.candidates is None else None
        moves = pending_moves(plan)
        if not result.ok:
            why = reasons([f"{e.op} {e.kind} {e.action_id}: {e.message}" for e in result.failed],
                          fallback="apply failed")
            return Outcome(FAILED, summary, error=why, retry=True, deferred=deferred,
                           pools=pools, moves=moves)
        if deferred:
            log.info("%d action(s) deferred until new pools are ready", deferred)
        if deferred and not any(str(e.outcome) in DONE for e in result.entries):
            # All this pass did was wait, in vain, for the new pools of an earlier move.
            return Outcome(DEFERRED, summary, deferred=deferred, pools=pools, moves=moves)
        return Outcome(APPLIED, summary, deferred=deferred, pools=pools, moves=moves)

    def _warn_new(self, warnings: list[str]) -> None:
        """Log the plan's warnings (another writer, fields added by hand, drift held back)
        when they first appear, not on every poll while they last."""
        for text in warnings:
            if text not in self._warned:
                log.warning("plan: %s", text)
        self._warned = set(warnings)

    def _open_runtime(self, config: Config, config_dir: Path) -> FullRuntime:
        s = self.settings
        return open_runtime(s.runtime, state_dir=s.state_dir, settings=config.settings,
                            config_dir=config_dir, data_root=s.data_root, code_root=s.code_root,
                            kubeconfig=s.kubeconfig, context=s.context, gate=self.gate,
                            config=config, watch=s.watch)

    def observe(self) -> LiveState:
        """A read of the runtime outside any pass (the pools on /status and the gauges).
        The runtime is opened once and kept (on Kubernetes: one client, not one per read);
        HTTP threads take turns."""
        with self._probe_lock:
            return self._probe_runtime().observe()

    def report(self) -> dict[str, Any]:
        """The runtime's report (nodes; the local agent) outside any pass, for the dashboard."""
        with self._probe_lock:
            return self._probe_runtime().report()

    def _probe_runtime(self) -> FullRuntime:
        """The probe's runtime, opened with the last pass's Settings (on Kubernetes they
        name the instance) and reopened when they change; the caller holds the lock."""
        s = self.settings
        if self._probe is not None and _kubernetes(self._probe_settings) != \
                _kubernetes(self._settings):
            self._probe.close()  # a new config may name another instance
            self._probe = None
        if self._probe is None:
            self._probe_settings = self._settings
            self._probe = open_runtime(s.runtime, state_dir=s.state_dir,
                                       settings=self._settings, kubeconfig=s.kubeconfig,
                                       context=s.context, watch=s.watch)
        return self._probe

    def close(self) -> None:
        """Close the probe's runtime (at shutdown)."""
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

    def _cache_dir(self) -> Path | None:
        from reconciler.config.cache import default_cache_dir

        return default_cache_dir()


def _held(live: LiveState, plan: Plan) -> bool:
    """Does the observed live state have drift the plan leaves alone?"""
    drifted = {pool.id for pool in live.pools if pool.drift}
    return bool(drifted - {action.id for action in plan.actions})
