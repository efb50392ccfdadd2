"""Prometheus metrics of the daemon, in a registry of its own.

A private CollectorRegistry (not the process-global default) keeps tests that
start several loops in one process independent, and keeps the exposition to
the daemon's own series. Conventions as in Flux's gotk_* and Argo CD's
argocd_* metrics: counters end in `_total`, durations in `_seconds`, facts
that are strings are `_info` series with the value 1, and no `_created`
series (prometheus-client's are switched off).

What comes from the daemon's state (pools, leader, commits) is read at scrape
time by a collector, so a pool that is gone has no series any more (nothing
is left behind to delete) and a pass never pays for it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from reconciler import __version__

CONTENT_TYPE = CONTENT_TYPE_LATEST
PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
POOL_LABELS = ("caller", "algorithm", "version", "pool")

prometheus_client.disable_created_metrics()  # no `_created` series (process-wide switch)


class StateCollector(Collector):
    """Series read from the daemon's state at scrape time: `state()` returns the
    DaemonState's JSON form (pools, leader, commits), or None before there is one."""

    def __init__(self, state: Callable[[], Mapping[str, Any] | None]) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        data = self.state()
        if data is None:
            return
        pools = data.get("pools") or {}
        items = pools.get("items") or []
        yield _gauge("reconciler_warm_pools", "Warm pools on the runtime.", len(items))
        yield _gauge("reconciler_warm_replicas_reserved",
                     "Warm replicas the runtime should keep, all pools together.",
                     int(pools.get("desired") or 0))
        yield _gauge("reconciler_warm_replicas_ready",
                     "Warm replicas ready now (current model), all pools together.",
                     int(pools.get("ready") or 0))
        reserved = GaugeMetricFamily("reconciler_pool_replicas_reserved",
                                     "Warm replicas a pool should keep.", labels=POOL_LABELS)
        ready = GaugeMetricFamily("reconciler_pool_replicas_ready",
                                  "Warm replicas of a pool ready now.", labels=POOL_LABELS)
        for item in items:
            labels = [str(item.get("caller") or ""), str(item.get("algorithm") or ""),
                      str(item.get("version") or str(item.get("commit") or "")[:12]),
                      str(item.get("id") or "")]
            reserved.add_metric(labels, int(item.get("replicas") or 0))
            ready.add_metric(labels, int(item.get("ready") or 0))
        yield reserved
        yield ready
        yield _gauge("reconciler_leader",
                     "1 while this daemon may reconcile (holds the Lease, or has none).",
                     1 if data.get("leader", True) else 0)
        source = InfoMetricFamily("reconciler_source", "The tracked source and its commits.")
        failed = data.get("lastFailedCommit") or {}
        source.add_metric([], {"repo": str(data.get("repo") or ""),
                               "branch": str(data.get("branch") or ""),
                               "path": str(data.get("path") or ""),
                               "seen_commit": str(data.get("lastSeenCommit") or ""),
                               "applied_commit": str(data.get("lastAppliedCommit") or ""),
                               "failed_commit": str(failed.get("commit") or "")})
        yield source


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.passes = Counter(
            "reconciler_passes", "Reconcile passes by result.", ["result"],
            registry=self.registry,
        )
        self.pass_duration = Histogram(
            "reconciler_pass_duration_seconds", "Duration of a reconcile pass.",
            buckets=PASS_BUCKETS, registry=self.registry,
        )
        self.last_applied = Gauge(
            "reconciler_last_applied_timestamp_seconds",
            "Unix time of the last pass that applied its commit successfully.",
            registry=self.registry,
        )
        self.last_pass = Gauge(
            "reconciler_last_pass_timestamp_seconds",
            "Unix time the last pass ended, whatever its result.", registry=self.registry,
        )
        self.last_success = Gauge(
            "reconciler_last_pass_success",
            "1 when the last pass was good (applied, unchanged or deferred), else 0.",
            registry=self.registry,
        )
        self.interval = Gauge(
            "reconciler_pass_interval_seconds",
            "The poll interval (--interval): alerts compare the age of the last pass to it.",
            registry=self.registry,
        )
        self.plan_actions = Counter(
            "reconciler_plan_actions", "Plan actions applied, by op.", ["op"],
            registry=self.registry,
        )
        self.drift = Counter(
            "reconciler_drift_detected",
            "Passes that found the live state changed although the config had not.",
            registry=self.registry,
        )
        self.notifications = Counter(
            "reconciler_notifications", "Notifications sent, by target and outcome.",
            ["target", "outcome"], registry=self.registry,
        )
        # process_start_time_seconds, process_open_fds, ...: the alerts and the operator use them
        ProcessCollector(registry=self.registry)
        build = Info("reconciler_build", "The reconciler build.", registry=self.registry)
        build.info({"version": __version__, "python": platform.python_version()})
        # every known label value from the start (no series appears out of nowhere)
        from reconciler.daemon.state import RESULTS

        for result in RESULTS:
            self.passes.labels(result=result)
        for op in ("create", "scale", "reload", "update", "delete"):
            self.plan_actions.labels(op=op)
        for target in ("webhook", "github"):
            for outcome in ("sent", "failed"):
                self.notifications.labels(target=target, outcome=outcome)
        self._state: Callable[[], Mapping[str, Any] | None] = lambda: None
        self.registry.register(StateCollector(lambda: self._state()))

    def bind_state(self, state: Callable[[], Mapping[str, Any] | None]) -> None:
        """Where the pools, leader and commits come from at scrape time."""
        self._state = state

    def record_pass(self, result: str, duration: float) -> None:
        import time

        from reconciler.daemon.state import GOOD

        self.passes.labels(result=result).inc()
        self.pass_duration.observe(duration)
        self.last_pass.set(time.time())
        self.last_success.set(1 if result in GOOD else 0)

    def record_actions(self, summary: Mapping[str, int]) -> None:
        for op, count in summary.items():
            if count:
                self.plan_actions.labels(op=op).inc(count)

    def record_pools(self, desired: int, ready: int) -> None:
        """Kept for callers of the old API: the pool series are read from the state."""

    def render(self) -> bytes:
        return generate_latest(self.registry)
