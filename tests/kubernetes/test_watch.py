"""Watches: the daemon's informer caches make a no-op pass cost no request, still see hand
edits at once (the watch), and list again on 410 Gone and every resync."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit import Audit
from envtest import Envtest
from faultproxy import FaultProxy, Rule
from kubekit import write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from gitops_harness import DaemonProcess, GitRepo, wait_for  # noqa: E402

from reconciler.runtimes.kubernetes import manifests as m  # noqa: E402
from reconciler.runtimes.kubernetes.client import MERGE_PATCH, Api, connect  # noqa: E402
from reconciler.runtimes.kubernetes.watches import Informer  # noqa: E402

pytestmark = pytest.mark.slow


def newest_pass(proc: DaemonProcess) -> dict:
    history = proc.status()["history"]
    return history[0] if history else {"pass": 0, "result": None}


def test_a_noop_daemon_pass_makes_no_request_and_edits_arrive_by_watch(
        tmp_path: Path, prefix: str, kubeconfig: Path, api: Api, audit: Audit) -> None:
    repo = GitRepo(tmp_path / "origin")
    write_config(repo.work, prefix, vision=False)
    commit = repo.commit("alice's sentiment pool")
    proc = DaemonProcess(["--repo", str(repo.remote), "--runtime", "kubernetes",
                          "--kubeconfig", str(kubeconfig), "--interval", "300ms",
                          "--resync", "10m", "--lease-duration", "3s"],
                         tmp_path / "state").started(timeout=30)
    try:
        proc.wait_status(lambda s: s["lastAppliedCommit"] == commit, 30, "applied")
        first = proc.wait_status(lambda s: newest_pass(proc)["result"] == "unchanged", 10,
                                 "a no-op pass")["history"][0]["pass"]
        start = audit.mark()
        proc.wait_status(lambda s: s["history"][0]["pass"] >= first + 4, 20, "four passes")
        requests = [r for r in audit.requests(start, audit.mark())
                    if "/leases/" not in r.path and r.verb != "watch"]
        assert requests == []  # four passes and /status reads: all from the caches
        assert all(p["result"] == "unchanged" for p in proc.status()["history"][:4])

        # a hand edit reaches the daemon by its watch; the pass reverts it, listing nothing
        deployment = api.list(f"/apis/apps/v1/namespaces/{prefix}alice/deployments").items[0]
        path = f"/apis/apps/v1/namespaces/{prefix}alice/deployments/" \
               f"{deployment['metadata']['name']}"
        start = audit.mark()
        api.request("PATCH", path, content_type=MERGE_PATCH, body={"spec": {"replicas": 7}})
        wait_for(lambda: api.get(path)["spec"]["replicas"] == 2, 15, "the drift reverted")
        requests = [r for r in audit.requests(start, audit.mark())
                    if "/leases/" not in r.path and r.verb != "watch"]
        assert {r.verb for r in requests} == {"patch"}, requests
    finally:
        if proc.proc.poll() is None:
            proc.stop(signal.SIGTERM)


@pytest.fixture
def proxy(envtest: Envtest) -> Iterator[FaultProxy]:
    server = FaultProxy(envtest.host).start()
    yield server
    server.stop()


def test_an_informer_lists_again_on_410_gone_and_on_resync(
        tmp_path: Path, prefix: str, envtest: Envtest, proxy: FaultProxy, api: Api) -> None:
    client = connect(proxy.kubeconfig(tmp_path, envtest.token))
    proxy.rules.append(Rule(lambda method, path: True, 410, query="watch=1"))
    informer = Informer(Api(client), "/api/v1/namespaces", labels=m.SELECTOR,
                        metadata_only=True, resync=1.5)
    try:
        assert informer.items() is not None
        wait_for(lambda: sum(1 for s in proxy.seen if s.query and "watch=1" in s.query) >= 2,
                 20, "watching again after a relist")
        lists = [s for s in proxy.seen if not (s.query and "watch=1" in s.query)]
        watches = [s for s in proxy.seen if s.query and "watch=1" in s.query]
        assert watches[0].outcome == 410  # Gone: the whole list again
        assert len(lists) >= 2
        # the second watch runs until the resync ends it (through the proxy, which relays
        # it whole when it ends), then the kind is listed again
        wait_for(lambda: len([s for s in proxy.seen if not (s.query and "watch=1" in s.query)])
                 >= 3, 20, "a relist on resync")
    finally:
        informer.stop()
        client.close()
    started = time.monotonic()
    assert informer.items() is None and time.monotonic() - started < 1  # stopped: untrusted
