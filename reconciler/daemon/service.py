"""The daemon process: locks, source, agent, server, loop, signals, shutdown.

One daemon per state directory (state_dir/daemon.lock, held for the whole
life of the process). With the local runtime the agent runs in this
process, so `reconciler daemon --repo DIR` is the whole product on one
machine; with --no-agent it only writes the store and a separate
`reconciler agent` runs the workers. On a cluster there is no agent (kubelets run the pods) and one
daemon per cluster reconciles: it holds a Lease (see daemon.leader); the
others wait, not reconciling, and take over when it is released or expires.
Shutdown on SIGTERM/SIGINT kills a Git fetch in progress, lets the current
pass finish its current action, stops the agent (which terminates every
worker process), releases the Lease, closes the server, releases the locks
and exits 0; a second signal forces the exit, still stopping the workers first.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from reconciler.daemon.leader import LEASE_NAME, LEASE_NAMESPACE, Leadership, identity
from reconciler.daemon.logs import setup_logging
from reconciler.daemon.loop import Loop
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Notifier, NotifySettings
from reconciler.daemon.passes import PassSettings, PipelinePass
from reconciler.daemon.probe import PoolsProbe
from reconciler.daemon.server import (
    HOSTS_ENV,
    Endpoints,
    Server,
    allowed_hosts,
    is_loopback,
    parse_listen,
)
from reconciler.daemon.state import GOOD, DaemonState, LastGood, now_iso
from reconciler.daemon.views import Dashboard
from reconciler.daemon.web import TOKEN_ENV
from reconciler.daemon.webhook import SECRET_ENV
from reconciler.errors import ReconcilerError
from reconciler.files import replace_file
from reconciler.runtimes import open_runtime
from reconciler.runtimes.local.lock import StateLock
from reconciler.sources import DirectorySource, open_source
from reconciler.sources.credentials import register_secret

log = logging.getLogger("reconciler.daemon")
STOP_GRACE = 30.0  # seconds the current pass gets to finish once the agent is stopped


@dataclass
class DaemonOptions:
    repo: str
    branch: str = "main"
    path: str = ""
    interval: float = 30.0
    resync: float = 300.0
    backoff_max: float = 300.0
    listen: str = "127.0.0.1:8080"
    log_format: str = "text"
    once: bool = False
    lease_namespace: str = LEASE_NAMESPACE
    lease_duration: float = 15.0
    passes: PassSettings = field(default_factory=PassSettings)
    agent: bool = True  # local runtime: run the agent in this process (False: --no-agent)


class Daemon:
    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.state_dir = options.passes.state_dir
        self._stop = threading.Event()
        self._signals = 0
        self._agent: Any = None

    def run(self) -> int:
        """Run until a signal (or, with --once, one pass); the exit code."""
        setup_logging(self.options.log_format)
        daemon_lock = StateLock(self.state_dir / "daemon.lock", "reconciler daemon")
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            daemon_lock.acquire(timeout=0.0)
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ReconcilerError(f"cannot use state directory {self.state_dir}: {why}"
                                  + (f" ({exc.filename})" if exc.filename else "")) from None
        try:
            return self._run_locked()
        finally:
            daemon_lock.release()

    def _run_locked(self) -> int:
        opts = self.options
        self._preflight()
        source, why = open_source(opts.repo, branch=opts.branch, path=opts.path,
                                  cache_root=self.state_dir / "git")
        if isinstance(source, DirectorySource):
            log.info("watching directory %s (it is %s)", source.location, why)
        else:
            log.info("tracking branch %s of %s with Git (it is %s)", opts.branch,
                     source.location, why)
        branch = None if isinstance(source, DirectorySource) else opts.branch
        state = DaemonState(repo=source.location, branch=branch, path=opts.path,
                            mode=source.kind)
        state.last_good = LastGood(self.state_dir, source.location, opts.path)
        state.last_applied = self._applied_before(state.last_good)
        leadership = self._leadership()
        metrics = Metrics()
        metrics.interval.set(opts.interval)
        reconcile = PipelinePass(opts.passes, gate=leadership.gate if leadership else None)
        dashboard = Dashboard(state, events=self._events_reader())
        reconcile.on_planned = dashboard.record
        probe = PoolsProbe(reconcile.observe, state, metrics, report=reconcile.report,
                           dashboard=dashboard)
        loop = Loop(source, reconcile, state, metrics, interval=opts.interval,
                    resync=opts.resync, backoff_max=opts.backoff_max,
                    leading=(lambda: leadership.leading) if leadership else lambda: True)
        if leadership is not None:
            state.leadership = leadership.to_json
            leadership.on_acquired = lambda: loop.trigger("became the leader")
        try:
            if opts.once:
                return self._once(loop, leadership)
            return self._serve(source, loop, state, metrics, branch, probe, leadership,
                               dashboard)
        finally:
            if leadership is not None:
                leadership.stop()
            reconcile.close()
            source.close()

    def _once(self, loop: Loop, leadership: Leadership | None) -> int:
        if leadership is not None and not leadership.try_acquire():
            raise ReconcilerError(f"not running the pass: {leadership.gate()}")
        record = loop.run_pass("once")
        return 0 if record.result in GOOD else 1

    def _events_reader(self) -> Any:
        """The local runtime's events for the dashboard (a cluster has none of ours)."""
        if self.options.passes.runtime != "local":
            return None
        from reconciler.runtimes.local.events import read_events

        return lambda limit: read_events(self.state_dir, limit)

    def _leadership(self) -> Leadership | None:
        """The Lease of a cluster runtime (its namespace made if missing); None locally."""
        settings = self.options.passes
        if settings.runtime == "local":
            return None
        from reconciler.runtimes.kubernetes.lease import Lease

        lease = Lease(self.options.lease_namespace, LEASE_NAME, identity(),
                      duration=max(1, round(self.options.lease_duration)),
                      kubeconfig=settings.kubeconfig, context=settings.context)
        lease.ensure_namespace()
        return Leadership(lease)

    def _applied_before(self, last_good: LastGood) -> str | None:
        """The last good commit of a previous daemon on this state directory.

        A restarted daemon must know its last good commit: with a bad head it
        puts that commit's files back in the worktree (so workers never start
        from a bad commit's code or data) and re-applies it on resync. Every good
        pass records it in STATE/daemon-state.json (an unchanged pass too, which
        leaves no apply history); a state directory from before that file falls
        back to the runtime's last successful apply."""
        commit = last_good.load()
        if commit:
            log.info("the last good commit on this state is %s", commit[:12])
            return commit
        settings = self.options.passes
        if settings.runtime != "local":
            return None  # a cluster keeps no apply history
        runtime = open_runtime(settings.runtime, state_dir=self.state_dir)
        try:
            last = runtime.report().get("lastApply")
        finally:
            runtime.close()
        if not last or not last.get("ok") or not last.get("sourceCommit"):
            return None
        log.info("the last apply on this state came from %s", str(last["sourceCommit"])[:12])
        return str(last["sourceCommit"])

    def _serve(self, source: Any, loop: Loop, state: DaemonState, metrics: Metrics,
               branch: str | None, probe: PoolsProbe, leadership: Leadership | None,
               dashboard: Dashboard) -> int:
        secret = os.environ.get(SECRET_ENV) or None
        register_secret(secret)
        if not secret:
            log.warning("%s is not set: POST /webhook refuses every delivery with 401",
                        SECRET_ENV)
        token = os.environ.get(TOKEN_ENV) or None
        register_secret(token)
        host, _ = parse_listen(self.options.listen)
        if not token and not is_loopback(host):
            log.warning("%s is not set: the dashboard, /status and /metrics are open to anyone "
                        "who can reach %s", TOKEN_ENV, self.options.listen)
        notifier = self._notifier(state, metrics, source.location, branch)
        thread = threading.Thread(target=loop.run, name="loop", daemon=True)
        endpoints = Endpoints(state=state, metrics=metrics, alive=thread.is_alive,
                              trigger=loop.trigger, secret=secret, branch=branch,
                              refresh=probe.refresh, token=token, dashboard=dashboard,
                              hosts=allowed_hosts(host, token, os.environ.get(HOSTS_ENV)))
        try:
            server = Server(self.options.listen, endpoints)
        except (OSError, ValueError) as exc:
            raise ReconcilerError(f"cannot listen on {self.options.listen}: {exc}") from None
        self._start_agent()
        server.start()
        self._write_info(server.address, source.location)
        log.info("serving on http://%s (dashboard, healthz, readyz, metrics, status, webhook)",
                 server.address)
        if isinstance(source, DirectorySource):
            source.start_watch(lambda what: loop.trigger(f"file change ({what})"))
        previous = self._install_signals(loop)
        if leadership is not None:
            leadership.try_acquire()  # before the first pass; then renewed or retried
            leadership.start()
        thread.start()
        try:
            while thread.is_alive() and not self._stop.wait(0.2):
                pass
        finally:
            self._shutdown(loop, thread, server, leadership, source)
            if notifier is not None:
                notifier.close(timeout=5.0)
            self._restore_signals(previous)
        return 0

    def _notifier(self, state: DaemonState, metrics: Metrics, repo: str,
                  branch: str | None) -> Notifier | None:
        """The outgoing webhook and GitHub statuses, when the environment asks for them."""
        try:
            settings = NotifySettings.from_env(os.environ)
        except ValueError as exc:
            raise ReconcilerError(f"notifications: {exc}") from None
        if not settings.enabled:
            return None
        notifier = Notifier(settings, repo=repo, branch=branch, metrics=metrics)
        state.listeners.append(notifier.observe)
        notifier.start()
        targets = [name for name, on in (("webhook", settings.url),
                                         ("GitHub commit statuses", settings.github_token))
                   if on]
        log.info("notifications on: %s", ", ".join(targets))
        return notifier

    def _shutdown(self, loop: Loop, thread: threading.Thread, server: Server,
                  leadership: Leadership | None, source: Any = None) -> None:
        log.info("stopping: letting the current pass finish its current action")
        loop.stop()
        interrupt = getattr(source, "interrupt", None)
        if interrupt is not None:
            interrupt()  # a hung `git fetch` is killed, not waited for (up to 120 s)
        if leadership is not None:
            leadership.close()  # nothing new is written; a wait for readiness gives up
        thread.join(timeout=2.0)
        self._stop_agent()  # a pass waiting for readiness now gives up at once (deferred)
        thread.join(timeout=STOP_GRACE)
        if thread.is_alive():
            log.warning("the current pass did not finish within %.0fs; exiting anyway",
                        STOP_GRACE)
        if leadership is not None:
            leadership.stop()  # the Lease is released: a standby takes over at once
        server.close()
        (self.state_dir / "daemon.json").unlink(missing_ok=True)
        log.info("stopped")

    def _preflight(self) -> None:
        """Fail at start-up, not in every pass, when the runtime cannot be opened at all."""
        settings = self.options.passes
        if settings.runtime == "local":
            return
        open_runtime(settings.runtime, state_dir=self.state_dir, kubeconfig=settings.kubeconfig,
                     context=settings.context).close()

    def _start_agent(self) -> None:
        if self.options.passes.runtime != "local":
            return
        if not self.options.agent:
            log.info("no local agent (--no-agent): `reconciler agent --state %s` runs the "
                     "workers", self.state_dir)
            return
        from reconciler.errors import LockHeld
        from reconciler.runtimes.local.agent import Agent

        self._agent = Agent(self.state_dir)
        try:
            self._agent.start()
        except LockHeld as exc:
            self._agent = None
            raise ReconcilerError(f"{exc}; to leave the workers to that agent, start the "
                                  f"daemon with --no-agent") from None
        log.info("local agent started (it runs the warm worker processes)")

    def _stop_agent(self, timeout: float = 10.0) -> None:
        """Stop the agent and its workers. Idempotent: the forced exit of a second
        signal calls it again even if a first stop was interrupted half-way."""
        if self._agent is not None:
            self._agent.stop(timeout=timeout)
            log.info("local agent stopped; its worker processes are gone")

    def _write_info(self, address: str, repo: str) -> None:
        """state_dir/daemon.json: where the daemon listens, for tests and operators."""
        info = {"pid": os.getpid(), "listen": address, "url": f"http://{address}",
                "startedAt": now_iso(), "repo": repo}
        replace_file(self.state_dir / "daemon.json", json.dumps(info, indent=2) + "\n")

    def _install_signals(self, loop: Loop) -> dict[int, Any]:
        def handle(signum: int, frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals == 1:
                log.info("received %s", signal.Signals(signum).name)
                loop.stop()
                self._stop.set()
                return
            log.warning("second signal: forcing exit")
            self._stop_agent(timeout=5.0)
            os._exit(130)

        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handle)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_daemon(options: DaemonOptions) -> int:
    return Daemon(options).run()
