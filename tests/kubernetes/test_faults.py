"""Faults between the reconciler and the API server, injected by a proxy in front of it:
throttling, server errors and reset connections are retried (reads as writes); an outage
trips the circuit breaker and stops the apply, which says what it did and did not do."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit import Audit
from envtest import Envtest
from faultproxy import FaultProxy, Rule
from kubekit import plan_for, reconciler, write_config

from reconciler.apply import Outcome, execute
from reconciler.config.model import Settings
from reconciler.runtimes.kubernetes.client import BREAKER_THRESHOLD, Api, connect
from reconciler.runtimes.kubernetes.runtime import CONCURRENCY, KubernetesRuntime

pytestmark = pytest.mark.slow


@pytest.fixture
def proxy(envtest: Envtest) -> Iterator[FaultProxy]:
    server = FaultProxy(envtest.host).start()
    yield server
    server.stop()


def test_reads_and_writes_are_retried_through_429_5xx_and_resets(
        tmp_path: Path, prefix: str, settings: Settings, envtest: Envtest,
        proxy: FaultProxy, audit: Audit) -> None:
    kubeconfig = proxy.kubeconfig(tmp_path, envtest.token)
    root = write_config(tmp_path / "repo", prefix)
    proxy.rules += [
        Rule(lambda method, path: path == "/api/v1/namespaces", 429, retry_after="0"),
        Rule(lambda method, path: path.endswith("/deployments") and method == "GET", 500),
        Rule(lambda method, path: path == "/api/v1/pods", "reset", times=2),
        Rule(lambda method, path: method == "PATCH" and "/deployments/" in path, "reset"),
        Rule(lambda method, path: method == "PATCH" and "/resourcequotas/" in path, 503,
             retry_after="1"),
    ]
    runtime = KubernetesRuntime(settings, kubeconfig=kubeconfig, retry_delays=(0.01, 0.05))
    try:
        start = audit.mark()
        plan = plan_for(root, runtime)
        result = execute(plan, runtime, wait_timeout=1)
        assert result.ok, result.to_json()
        assert all(e.attempts == 1 for e in result.entries)  # retried inside the client
        assert plan_for(root, runtime).empty
        reached = audit.count(start, audit.mark())
    finally:
        runtime.close()
    injected = Counter((s.method, s.outcome) for s in proxy.seen
                       if isinstance(s.outcome, str) or s.outcome >= 429)
    assert injected == Counter({("GET", 429): 1, ("GET", 500): 1, ("GET", "reset"): 2,
                                ("PATCH", "reset"): 1, ("PATCH", 503): 1})
    assert reached[("list", "/apis/apps/v1/deployments")] == 2  # two plans, once each
    assert reached[("patch", f"/api/v1/namespaces/{prefix}alice/resourcequotas/"
                             "reconciler-quota")] == 1


def test_an_outage_trips_the_circuit_breaker_and_the_apply_stops(
        tmp_path: Path, prefix: str, envtest: Envtest, proxy: FaultProxy,
        audit: Audit) -> None:
    kubeconfig = proxy.kubeconfig(tmp_path, envtest.token)
    root = write_config(tmp_path / "repo", prefix, extra_users=30)
    proxy.rules.append(Rule(lambda method, path: method == "PATCH", 503, times=None,
                            retry_after="0"))
    start = audit.mark()
    result = reconciler("apply", str(root), "--runtime", "kubernetes", "--kubeconfig",
                        str(kubeconfig), "--state", str(tmp_path / "state"), "--auto-approve",
                        timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout + result.stderr
    assert f"the API server failed {BREAKER_THRESHOLD} requests in a row" in out
    assert "not attempted" in out  # what was not done is listed
    assert "Apply finished with failures" in out
    writes = [s for s in proxy.seen if s.method == "PATCH"]
    assert BREAKER_THRESHOLD <= len(writes) <= BREAKER_THRESHOLD + CONCURRENCY
    assert not [r for r in audit.requests(start, audit.mark()) if r.verb == "patch"]


def test_the_executor_reports_what_was_done_before_the_breaker_opened(
        tmp_path: Path, prefix: str, settings: Settings, envtest: Envtest,
        proxy: FaultProxy) -> None:
    kubeconfig = proxy.kubeconfig(tmp_path, envtest.token)
    root = write_config(tmp_path / "repo", prefix, extra_users=5)
    proxy.rules.append(Rule(lambda method, path: method == "PATCH" and "/deployments/" in path,
                            500, times=None))
    runtime = KubernetesRuntime(settings, kubeconfig=kubeconfig, retry_delays=(0.0, 0.0))
    try:
        result = execute(plan_for(root, runtime), runtime, wait_timeout=1)
    finally:
        runtime.close()
    outcomes = Counter((e.kind, e.outcome) for e in result.entries)
    assert outcomes[("Tenant", Outcome.CREATED)] == 7 and outcomes[("Quota", Outcome.CREATED)]
    assert outcomes[("WarmPool", Outcome.FAILED)] >= 1
    assert outcomes[("WarmPool", Outcome.SKIPPED)] + outcomes[("WarmPool", Outcome.FAILED)] == 7
    assert not result.ok


def test_lists_page_and_start_over_when_the_continue_token_expired(
        tmp_path: Path, prefix: str, envtest: Envtest, proxy: FaultProxy, api: Api) -> None:
    for i in range(5):
        api.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": f"{prefix}page-{i}", "labels": {"page": prefix.strip("-")}}})
    proxy.rules.append(Rule(lambda method, path: True, 410, query="continue="))
    pager = Api(connect(proxy.kubeconfig(tmp_path, envtest.token)))
    try:
        listing = pager.list("/api/v1/namespaces", labels=f"page={prefix.strip('-')}", page=2)
    finally:
        pager.close()
    assert sorted(o["metadata"]["name"] for o in listing.items) == [
        f"{prefix}page-{i}" for i in range(5)]
    pages = [(s.outcome, "continue=" in s.query) for s in proxy.seen]
    # first page, the second refused (410: expired), then the whole list again: 3 pages
    assert pages == [(200, False), (410, True), (200, False), (200, True), (200, True)]
    for i in range(5):
        api.delete(f"/api/v1/namespaces/{prefix}page-{i}")


def test_a_read_that_times_out_is_retried(tmp_path: Path, envtest: Envtest,
                                          proxy: FaultProxy) -> None:
    proxy.rules.append(Rule(lambda method, path: path == "/api/v1/nodes", "slow", delay=2.0))
    reader = Api(connect(proxy.kubeconfig(tmp_path, envtest.token)), timeout=0.5,
                 delays=(0.0, 0.0))
    try:
        assert reader.list("/api/v1/nodes").items
    finally:
        reader.close()
    assert [s.outcome for s in proxy.seen if s.path == "/api/v1/nodes"][:2] == ["slow", 200]


def test_a_kubeconfig_that_is_not_yaml_is_a_clean_error(tmp_path: Path) -> None:
    root = write_config(tmp_path / "repo", "acct-")
    for name, text in (("garbled", "clusters: [{{{ not: yaml\n  - ]"),
                       ("a-list", "- just\n- a list\n")):
        bad = tmp_path / name
        bad.write_text(text)
        result = reconciler("plan", str(root), "--runtime", "kubernetes", "--kubeconfig",
                            str(bad))
        assert result.returncode == 1, result.stdout
        assert "Traceback" not in result.stderr
        assert f"cannot load Kubernetes credentials from {bad}" in result.stderr


def test_a_failing_exec_plugin_is_a_clean_error_not_a_401(tmp_path: Path) -> None:
    # EKS, GKE and AKS kubeconfigs run a plugin for the token; the client logs its failure
    # and goes on without credentials, so the first request would be a bare 401.
    root = write_config(tmp_path / "repo", "acct-")
    failing = tmp_path / "plugin"
    failing.write_text("#!/bin/sh\necho 'token expired: run login' >&2\nexit 1\n")
    failing.chmod(0o755)
    for command, words in ((str(tmp_path / "no-such-plugin"), "No such file or directory"),
                           (str(failing), "exec: process returned 1")):
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1", "command": command}}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
        result = reconciler("plan", str(root), "--runtime", "kubernetes", "--kubeconfig",
                            str(kubeconfig))
        assert result.returncode == 1, result.stdout
        assert f"cannot load Kubernetes credentials from {kubeconfig}: the user's exec " \
               "plugin failed" in result.stderr
        assert words in result.stderr
        assert "Traceback" not in result.stderr and "ERROR:root" not in result.stderr
