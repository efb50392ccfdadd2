"""Prometheus metrics of the daemon, in a registry of its own.

A private CollectorRegistry (not the process-global default) keeps tests that
start several loops in one process independent, and keeps the exposition to
the daemon's own series.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


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
        self.plan_actions = Counter(
            "reconciler_plan_actions", "Plan actions applied, by op.", ["op"],
            registry=self.registry,
        )
        self.drift = Counter(
            "reconciler_drift_detected",
            "Passes that found the live state changed although the config had not.",
            registry=self.registry,
        )
        self.warm_pools = Gauge(
            "reconciler_warm_pools", "Warm replicas wanted (desired) and warm (ready).",
            ["state"], registry=self.registry,
        )
        for state in ("desired", "ready"):
            self.warm_pools.labels(state=state).set(0)

    def record_pass(self, result: str, duration: float) -> None:
        self.passes.labels(result=result).inc()
        self.pass_duration.observe(duration)

    def record_actions(self, summary: Mapping[str, int]) -> None:
        for op, count in summary.items():
            if count:
                self.plan_actions.labels(op=op).inc(count)

    def record_pools(self, desired: int, ready: int) -> None:
        self.warm_pools.labels(state="desired").set(desired)
        self.warm_pools.labels(state="ready").set(ready)

    def render(self) -> bytes:
        return generate_latest(self.registry)
