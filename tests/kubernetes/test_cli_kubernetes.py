"""The CLI end to end against the API server: plan, apply, plan again, status, plan files.

The config has no version moves, so apply never waits for pods (envtest runs
no controllers).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from kubekit import apply_all, plan_for, reconciler, set_deployment_status, write_config

from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes.client import Api
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime

pytestmark = pytest.mark.slow


def test_plan_apply_plan_status(tmp_path: Path, prefix: str, kubeconfig: Path,
                                api: Api) -> None:
    root = write_config(tmp_path / "repo", prefix)
    common = ["--runtime", "kubernetes", "--kubeconfig", str(kubeconfig),
              "--state", str(tmp_path / "state")]

    plan = reconciler("plan", str(root), *common, "--format", "json", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stderr
    data = json.loads(plan.stdout)
    assert data["runtime"] == "kubernetes"
    assert data["summary"]["create"] == 5

    applied = reconciler("apply", str(root), *common, "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete" in applied.stdout

    again = reconciler("plan", str(root), *common, "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout

    alice = next(a for a in data["actions"] if a["kind"] == "WarmPool"
                 and a["caller"] == "alice")
    set_deployment_status(api, f"{prefix}alice", m.deployment_name(alice["id"]), ready=2)
    status = reconciler("status", *common, "--instance", prefix, "--format", "json",
                        "--caller", "alice")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    pools = {p["id"]: p for p in report["pools"]}
    assert pools[alice["id"]]["ready"] == 2 and pools[alice["id"]]["replicas"] == 2
    assert {"cpu-node-1", "gpu-node-1"} <= {n["name"] for n in report["nodes"]}

    # without --instance: the one the last apply with this --state wrote, said on stderr
    recorded = reconciler("status", *common, "--format", "json", "--caller", "alice")
    assert recorded.returncode == 0, recorded.stderr
    assert json.loads(recorded.stdout)["pools"] == report["pools"]
    assert f"instance {prefix} (the last Kubernetes apply with this --state" in recorded.stderr
    (tmp_path / "state" / "kubernetes-instance").write_bytes(b"\xff\n")
    damaged = reconciler("status", *common)
    assert damaged.returncode == 1 and "kubernetes-instance is damaged" in damaged.stderr
    assert "Traceback" not in damaged.stderr


def test_unreachable_cluster_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    root = write_config(tmp_path / "repo", "acct-")
    missing = tmp_path / "no-such-kubeconfig"
    result = reconciler("plan", str(root), "--runtime", "kubernetes",
                        "--kubeconfig", str(missing))
    assert result.returncode == 1
    assert f"cannot load Kubernetes credentials from {missing} (--kubeconfig): no such file" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_an_apply_that_fails_says_what_was_not_attempted(tmp_path: Path, prefix: str,
                                                         kubeconfig: Path, api: Api) -> None:
    # alice's namespace is someone else's: her Tenant fails, her quota and pool are not
    # attempted, bob's objects are applied; the closing error says so.
    root = write_config(tmp_path / "repo", prefix)
    api.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{prefix}alice"}})
    try:
        result = reconciler("apply", str(root), "--runtime", "kubernetes", "--kubeconfig",
                            str(kubeconfig), "--state", str(tmp_path / "state"),
                            "--auto-approve")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "error: 1 action(s) failed and 2 not attempted; the others were applied" \
            in result.stderr
        assert "Traceback" not in result.stderr
        assert api.get_or_none(f"/api/v1/namespaces/{prefix}bob") is not None
    finally:
        api.delete(f"/api/v1/namespaces/{prefix}alice")


def make_ready_pod(api: Api, namespace: str, name: str, template: dict) -> None:
    """A pod of the pool's template, Ready (what a kubelet would report)."""
    api.request("POST", f"/api/v1/namespaces/{namespace}/pods", body={
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, **template["metadata"]}, "spec": template["spec"]})
    api.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status",
                content_type="application/merge-patch+json", body={"status": {
                    "phase": "Running", "startTime": "2026-11-22T10:00:00Z",
                    "conditions": [{"type": "Ready", "status": "True"}]}})


def test_status_text_shows_pods_and_no_local_agent(tmp_path: Path, prefix: str,
                                                   kubeconfig: Path, api: Api,
                                                   runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix, sentiment_replicas=1)
    apply_all(plan_for(root, runtime), runtime)
    pool = next(p for p in runtime.observe().pools if p.caller == "alice")
    template = m.deployment_manifest(pool, runtime.settings)["spec"]["template"]
    make_ready_pod(api, f"{prefix}alice", "sentiment-pod-1", template)
    set_deployment_status(api, f"{prefix}alice", m.deployment_name(pool.id), ready=1)

    result = reconciler("status", "--runtime", "kubernetes", "--kubeconfig", str(kubeconfig),
                        "--state", str(tmp_path / "state"), "--instance", prefix,
                        "--caller", "alice")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "PODS" in lines[0].split() and "PIDS" not in lines[0].split()
    row = next(line for line in lines if line.startswith(pool.id)).split()
    assert "1/1" in row and "sentiment-pod-1" in row
    assert "agent" not in result.stdout and "reconciler daemon" not in result.stdout
    assert any(line.startswith("node gpu-node-1:") for line in lines)
    # bob's pool has no ready pod: status fails, and never for want of an agent (a cluster
    # has kubelets, not ours)
    short = reconciler("status", "--runtime", "kubernetes", "--kubeconfig", str(kubeconfig),
                       "--state", str(tmp_path / "state"), "--instance", prefix)
    assert short.returncode == 1 and "is below its reservation" in short.stderr
    assert "agent" not in short.stderr


def test_a_plan_file_keeps_its_namespaces_when_the_config_is_gone(
        tmp_path: Path, prefix: str, kubeconfig: Path, api: Api) -> None:
    root = write_config(tmp_path / "repo", prefix)
    plan_file = tmp_path / "plan.json"
    common = ["--runtime", "kubernetes", "--kubeconfig", str(kubeconfig),
              "--state", str(tmp_path / "state")]
    plan = reconciler("plan", str(root), *common, "--out", str(plan_file))
    assert plan.returncode == 0, plan.stderr
    options = json.loads(plan_file.read_text())["options"]["kubernetes"]
    assert options == {"namespacePrefix": prefix, "gpuNodeSelector": {"accelerator": "nvidia"},
                       "gpuTolerations": [{"key": m.GPU, "operator": "Exists",
                                           "effect": "NoSchedule"}]}
    shutil.rmtree(root)

    cluster = ["--kubeconfig", str(kubeconfig), "--state", str(tmp_path / "state")]
    # without --runtime, the plan's runtime is used
    applied = reconciler("apply", "--plan", str(plan_file), *cluster, "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    deployments = api.get(f"/apis/apps/v1/namespaces/{prefix}alice/deployments")["items"]
    assert [d["metadata"]["namespace"] for d in deployments] == [f"{prefix}alice"]
    assert api.get_or_none("/api/v1/namespaces/acct-alice") is None  # not the default prefix

    # an explicit --runtime that differs is refused, naming both
    local = reconciler("apply", "--plan", str(plan_file), *cluster, "--runtime", "local",
                       "--auto-approve")
    assert local.returncode == 1 and "Traceback" not in local.stderr
    assert (f"plan file {plan_file} was made for the kubernetes runtime, not local: leave out "
            "--runtime") in local.stderr


def test_kubectl_apply_of_render_works_on_its_first_run(tmp_path: Path, prefix: str,
                                                         kubeconfig: Path, api: Api,
                                                         runtime: KubernetesRuntime) -> None:
    """Each directory's namespace file sorts first, so `kubectl apply -R` makes the
    namespace before what lives in it; what it makes is what the runtime would make."""
    kubectl = shutil.which("kubectl") or "/usr/bin/kubectl"
    if not Path(kubectl).exists():
        pytest.skip("kubectl is not installed")
    root = write_config(tmp_path / "repo", prefix)
    out = tmp_path / "deploy"
    rendered = reconciler("render", str(root), "--out", str(out), "--pdb-api",
                          runtime.pdb_version)
    assert rendered.returncode == 0, rendered.stderr
    done = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "apply", "--server-side",
                           "-R", "-f", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert api.get(f"/api/v1/namespaces/{prefix}alice/resourcequotas/{m.QUOTA_NAME}")
    plan = plan_for(root, runtime)  # kubectl's objects are the reconciler's own: no changes
    assert plan.empty, [(a.op, a.id, [(c.path, c.before) for c in a.changes])
                        for a in plan.actions]


def test_a_server_that_refuses_says_so_on_each_retry(tmp_path: Path) -> None:
    # The kubeconfig names a port where nothing listens: every attempt is shown as it is
    # retried (an unanswered one can take the whole request timeout), then the error, in
    # words rather than urllib3's wrapping.
    from envtest import free_port

    root = write_config(tmp_path / "repo", "acct-")
    host = f"https://127.0.0.1:{free_port()}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": host,
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    result = reconciler("plan", str(root), "--runtime", "kubernetes", "--kubeconfig",
                        str(kubeconfig), "--state", str(tmp_path / "state"))
    assert result.returncode == 1, result.stdout
    lines = result.stderr.splitlines()
    retries = [line for line in lines if "trying again in" in line]
    assert len(retries) == 4 and "(attempt 5 of 5)" in retries[-1], result.stderr
    assert lines[-1].startswith(f"error: GET /apis/policy/v1: cannot reach the API server at "
                                f"{host}: ") and "Connection refused" in lines[-1]
    assert "HTTPSConnectionPool" not in result.stderr and "Traceback" not in result.stderr
