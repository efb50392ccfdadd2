"""The daemon's metrics: names, per-pool series, negotiation; the shipped alerts and dashboard.

The exposition is always checked with prometheus-client's own parser, and with
`promtool check metrics` where promtool is installed (Debian's `prometheus`
package; .ci/run installs it); the alert rules with `promtool check rules`
and `promtool test rules` (tests/admin/alerts_test.yaml).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler import __version__
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.server import Endpoints, Server
from reconciler.daemon.state import DaemonState, Outcome, PassRecord

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool is not installed (apt-get install prometheus; .ci/run does it)"


def pool(pool_id: str, caller: str, replicas: int, ready: int) -> dict[str, Any]:
    return {"id": pool_id, "caller": caller, "algorithm": "acme/sentiment", "version": "1.2.0",
            "commit": "c" * 40, "replicas": replicas, "ready": ready}


@pytest.fixture
def served() -> Iterator[tuple[str, DaemonState, Metrics]]:
    state = DaemonState(repo="https://git.example/config.git", branch="main", path="",
                        mode="git")
    metrics = Metrics()
    server = Server("127.0.0.1:0", Endpoints(state=state, metrics=metrics, alive=lambda: True,
                                             trigger=lambda _: None, secret=None,
                                             branch="main"))
    server.start()
    state.seen("a" * 40)
    state.record(PassRecord(1, "start", "a" * 40, "applied", "2026-12-01T00:00:00Z", 0.2, {}),
                 Outcome("applied", pools={"desired": 3, "ready": 2, "items": [
                     pool("alice.acme.sentiment.cccccccccccc", "alice", 2, 1),
                     pool("bob.acme.sentiment.cccccccccccc", "bob", 1, 1)]}))
    metrics.record_pass("applied", 0.2)
    try:
        yield f"http://{server.address}", state, metrics
    finally:
        server.close()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                timeout=5) as response:
        return dict(response.headers), response.read()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_names_and_per_pool_series(served: tuple[str, DaemonState, Metrics]) -> None:
    url, state, _ = served
    _, body = get(url + "/metrics")
    text = body.decode()
    found = families(text)
    for name in ("reconciler_passes", "reconciler_pass_duration_seconds",
                 "reconciler_last_applied_timestamp_seconds", "reconciler_plan_actions",
                 "reconciler_drift_detected", "reconciler_warm_pools",
                 "reconciler_warm_replicas_reserved", "reconciler_warm_replicas_ready",
                 "reconciler_pool_replicas_reserved", "reconciler_pool_replicas_ready",
                 "reconciler_leader", "reconciler_build_info", "reconciler_source_info",
                 "reconciler_last_pass_success", "reconciler_pass_interval_seconds",
                 "process_start_time_seconds"):
        assert name in found, name
    assert "_created" not in text
    assert re.search(r"^reconciler_warm_pools 2\.0$", text, re.M)  # pools, not replicas
    assert re.search(r"^reconciler_warm_replicas_reserved 3\.0$", text, re.M)
    ready = {s.labels["caller"]: s.value for s in found["reconciler_pool_replicas_ready"].samples}
    assert ready == {"alice": 1.0, "bob": 1.0}
    sample = found["reconciler_pool_replicas_reserved"].samples[0]
    assert set(sample.labels) == {"caller", "algorithm", "version", "pool"}
    assert 'reconciler_leader 1.0' in text and f'version="{__version__}"' in text
    assert f'applied_commit="{"a" * 40}"' in text
    # a pool that is gone has no series any more
    state.set_pools({"desired": 1, "ready": 1,
                     "items": [pool("bob.acme.sentiment.cccccccccccc", "bob", 1, 1)]})
    _, body = get(url + "/metrics")
    ready = families(body.decode())["reconciler_pool_replicas_ready"].samples
    assert [s.labels["caller"] for s in ready] == ["bob"]


def test_openmetrics_and_gzip_by_negotiation(served: tuple[str, DaemonState, Metrics]) -> None:
    url, _, _ = served
    headers, body = get(url + "/metrics", {"Accept": "application/openmetrics-text; "
                                                     "version=1.0.0; charset=utf-8"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")
    headers, body = get(url + "/metrics", {"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    assert b"reconciler_pool_replicas_ready" in gzip.decompress(body)
    assert "Content-Security-Policy" in headers


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_accepts_the_metric_names(served: tuple[str, DaemonState, Metrics]) -> None:
    url, _, _ = served
    _, body = get(url + "/metrics")
    done = subprocess.run([str(PROMTOOL), "check", "metrics"], input=body,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert not done.stdout.strip() and not done.stderr.strip(), done.stderr.decode()


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_checks_and_tests_the_alert_rules() -> None:
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(MONITORING / "alerts.yaml")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([str(PROMTOOL), "test", "rules", "alerts_test.yaml"],
                          cwd=Path(__file__).parent, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_grafana_dashboard_only_uses_metrics_we_export(
        served: tuple[str, DaemonState, Metrics]) -> None:
    url, _, _ = served
    _, body = get(url + "/metrics")
    exported = set()
    for family in text_string_to_metric_families(body.decode()):
        exported |= {sample.name for sample in family.samples}
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\b((?:reconciler|process)_[a-z_]+)", target["expr"]))
    assert used and used <= exported, used - exported
    rules = (MONITORING / "alerts.yaml").read_text()
    assert set(re.findall(r"\b((?:reconciler|process)_[a-z_]+)", rules)) <= exported
