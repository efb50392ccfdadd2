"""The real daemon on Kubernetes: two processes, one Lease, one writer at a time.

Both daemons run `python -m reconciler daemon --runtime kubernetes` against
the envtest API server and a real Git remote, each with its own state
directory, and a short Lease (3 s) so hand-overs are quick. The Lease lives
in the default namespace `reconciler-system`, which the first daemon makes.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubekit import reconciler, write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from gitops_harness import DaemonProcess, GitRepo, wait_for  # noqa: E402

from reconciler.runtimes.kubernetes import manifests as m  # noqa: E402
from reconciler.runtimes.kubernetes.client import Api, ApiError  # noqa: E402

pytestmark = pytest.mark.slow
LEASE = "/apis/coordination.k8s.io/v1/namespaces/reconciler-system/leases/reconciler"
QUIET = 2.5  # seconds: more than two poll intervals and two acquire attempts


def daemon(tmp_path: Path, name: str, repo: GitRepo, kubeconfig: Path) -> DaemonProcess:
    return DaemonProcess(["--repo", str(repo.remote), "--runtime", "kubernetes",
                          "--kubeconfig", str(kubeconfig), "--interval", "1s",
                          "--resync", "5m", "--lease-duration", "3s"],
                         tmp_path / name).started(timeout=30)


def once_args(tmp_path: Path, repo: GitRepo, kubeconfig: Path) -> list[str]:
    return ["--once", "--repo", str(repo.remote), "--runtime", "kubernetes",
            "--kubeconfig", str(kubeconfig), "--state", str(tmp_path / "state-once"),
            "--lease-duration", "3s"]


def identity(proc: DaemonProcess) -> str:
    return f"{socket.gethostname()}:{proc.proc.pid}"


def sentiment_replicas(api: Api, prefix: str) -> int:
    items = api.get(f"/apis/apps/v1/namespaces/{prefix}alice/deployments")["items"]
    assert len(items) == 1, [d["metadata"]["name"] for d in items]
    return int(items[0]["spec"]["replicas"])


def set_holder(api: Api, holder: str | None, duration: int) -> None:
    """Write the Lease's holder as another candidate would (retrying a lost race)."""
    def write() -> bool:
        lease = api.get(LEASE)
        lease["spec"].update(holderIdentity=holder, leaseDurationSeconds=duration)
        try:
            api.request("PUT", LEASE, body=lease)
            return True
        except ApiError as exc:
            if exc.status != 409:
                raise
            return False

    wait_for(write, 5, "the Lease written")


def leads(proc: DaemonProcess) -> Any:
    return lambda s: s["leader"] and s["lease"]["holder"] == identity(proc)


def test_one_leader_applies_loses_the_lease_and_hands_over(
        tmp_path: Path, prefix: str, kubeconfig: Path, api: Api) -> None:
    repo = GitRepo(tmp_path / "origin")
    write_config(repo.work, prefix)
    first = repo.commit("two sentiment replicas for alice, one vision for bob")
    a = daemon(tmp_path, "state-a", repo, kubeconfig)
    b: DaemonProcess | None = None
    try:
        status = a.wait_status(lambda s: s["lastAppliedCommit"] == first, 20, "A applied")
        assert leads(a)(status) and status["lease"]["namespace"] == "reconciler-system"
        assert sentiment_replicas(api, prefix) == 2
        assert api.get(f"/apis/apps/v1/namespaces/{prefix}bob/deployments")["items"]
        namespace = api.get("/api/v1/namespaces/reconciler-system")["metadata"]
        assert namespace["labels"][m.MANAGED_BY] == m.MANAGER
        assert a.get("/readyz")[0] == 200
        assert (a.state / "daemon.json").exists() and (a.state / "journal.jsonl").exists()
        assert "local agent" not in a.output()

        b = daemon(tmp_path, "state-b", repo, kubeconfig)
        status = b.wait_status(lambda s: s["lease"]["holder"] == identity(a), 10,
                               "B sees A holding the Lease")
        assert status["leader"] is False and status["history"] == []
        assert status["lastAppliedCommit"] is None and status["lastSeenCommit"] is None
        code, body = b.get("/readyz")
        assert code == 503 and identity(a) in body.decode()
        once = reconciler("daemon", *once_args(tmp_path, repo, kubeconfig))
        assert once.returncode == 1 and "not the leader" in once.stderr, once.stderr

        # Someone else takes the Lease: A stops reconciling at once, B does not start.
        set_holder(api, "intruder", 60)
        a.wait_status(lambda s: not s["leader"] and s["lease"]["holder"] == "intruder", 5,
                      "A lost the Lease")
        passes = len(a.status()["history"])
        write_config(repo.work, prefix, sentiment_replicas=3)
        second = repo.commit("three sentiment replicas")
        time.sleep(QUIET)  # nothing may happen here: there is no event to wait for
        assert sentiment_replicas(api, prefix) == 2
        assert len(a.status()["history"]) == passes and b.status()["history"] == []
        assert a.get("/readyz")[0] == 503

        set_holder(api, identity(a), 3)  # handed back: A leads and catches up
        a.wait_status(lambda s: leads(a)(s) and s["lastAppliedCommit"] == second, 10,
                      "A leads again and applied the new commit")
        assert sentiment_replicas(api, prefix) == 3

        assert a.stop() == 0
        assert "released the lease" in a.output()
        b.wait_status(lambda s: leads(b)(s) and s["lastAppliedCommit"] == second, 10,
                      "B took over")
        write_config(repo.work, prefix, sentiment_replicas=1)
        third = repo.commit("one sentiment replica")
        b.wait_status(lambda s: s["lastAppliedCommit"] == third, 10, "B applied a new commit")
        assert sentiment_replicas(api, prefix) == 1
        assert b.get("/readyz")[0] == 200
        assert b.stop() == 0
        assert api.get(LEASE)["spec"].get("holderIdentity") is None
        once = reconciler("daemon", *once_args(tmp_path, repo, kubeconfig))
        assert once.returncode == 0, once.stderr
        assert api.get(LEASE)["spec"].get("holderIdentity") is None  # released again
    finally:
        for proc in (a, b):
            if proc is not None and proc.proc.poll() is None:
                proc.stop(signal.SIGKILL)


def test_a_plan_warning_is_logged_once_when_it_appears_not_every_poll(
        tmp_path: Path, prefix: str, kubeconfig: Path, api: Api) -> None:
    """Someone adds a container to an engine's pod template: apply cannot remove it, and
    the daemon's log says so when it appears, not once a second while it lasts."""
    repo = GitRepo(tmp_path / "origin")
    write_config(repo.work, prefix)
    first = repo.commit("two sentiment replicas for alice, one vision for bob")
    proc = daemon(tmp_path, "state", repo, kubeconfig)
    try:
        proc.wait_status(lambda s: s["lastAppliedCommit"] == first, 20, "applied")
        (name,) = [d["metadata"]["name"] for d in api.get(
            f"/apis/apps/v1/namespaces/{prefix}alice/deployments")["items"]]
        api.request("PATCH", f"/apis/apps/v1/namespaces/{prefix}alice/deployments/{name}",
                    content_type="application/strategic-merge-patch+json",
                    query={"fieldManager": "intruder"}, body={"spec": {"template": {"spec": {
                        "containers": [{"name": "miner", "image": "registry.example/m"}]}}}})
        line = "plan: field manager 'intruder' added Deployment spec.template.spec" \
               ".containers[miner]"
        wait_for(lambda: line in proc.output(), 10, "the warning logged")
        passes = len(proc.status()["history"])
        proc.wait_status(lambda s: len(s["history"]) >= passes + 3, 10, "three more passes")
        assert proc.output().count(line) == 1
    finally:
        if proc.proc.poll() is None:
            assert proc.stop() == 0
