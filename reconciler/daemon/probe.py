"""Fresh pool readiness for /status and the gauges, between passes.

A pass records the pools it saw, but replicas warm up after the pass has
ended (the agent starts them), and with a long interval /status would show
them pending for minutes. The probe re-reads the runtime when an endpoint is
asked, at most once per `min_interval`, so a scraper hammering /metrics costs
one read per second, not one per request. For the dashboard it also reads
the runtime's report (nodes; the local agent), at most every REPORT_EVERY.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.passes import pools_summary
from reconciler.daemon.state import DaemonState
from reconciler.daemon.views import Dashboard
from reconciler.states import LiveState

log = logging.getLogger("reconciler.daemon.probe")
REPORT_EVERY = 5.0  # seconds between reads of the runtime's report (on a cluster: a node list)


class PoolsProbe:
    def __init__(self, observe: Callable[[], LiveState], state: DaemonState, metrics: Metrics,
                 min_interval: float = 1.0, *,
                 report: Callable[[], dict[str, Any]] | None = None,
                 dashboard: Dashboard | None = None) -> None:
        self.observe, self.state, self.metrics = observe, state, metrics
        self.report, self.dashboard = report, dashboard
        self._reported = 0.0  # the report (nodes, agent) is read at most every REPORT_EVERY
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._last = 0.0

    def refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._last < self.min_interval:
                return
            self._last = time.monotonic()
            try:
                pools = pools_summary(self.observe())
            except Exception as exc:  # /status must answer even when the runtime does not
                log.debug("cannot read the pools: %s", exc)
                return
            self.state.set_pools(pools)
            self.metrics.record_pools(pools["desired"], pools["ready"])
            if self.report is not None and self.dashboard is not None and \
                    time.monotonic() - self._reported >= REPORT_EVERY:
                self._reported = time.monotonic()
                try:
                    report = self.report()
                except Exception as exc:  # nodes and agent are extras; pools were read
                    log.debug("cannot read the runtime's report: %s", exc)
                    return
                self.dashboard.set_report(report)
                if not report.get("nodes"):
                    self._reported = 0.0  # the agent has not written its nodes yet
