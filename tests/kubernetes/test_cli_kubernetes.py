"""The CLI end to end against the API server: plan, apply, plan again, status.

The config has no version moves, so apply never waits for pods (envtest runs
no controllers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubekit import reconciler, set_deployment_status, write_config

from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes.client import Api

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
    status = reconciler("status", *common, "--format", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    pools = {p["id"]: p for p in report["pools"]}
    assert pools[alice["id"]]["ready"] == 2 and pools[alice["id"]]["replicas"] == 2
    assert {"cpu-node-1", "gpu-node-1"} <= {n["name"] for n in report["nodes"]}


def test_unreachable_cluster_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    root = write_config(tmp_path / "repo", "acct-")
    missing = tmp_path / "no-such-kubeconfig"
    result = reconciler("plan", str(root), "--runtime", "kubernetes",
                        "--kubeconfig", str(missing))
    assert result.returncode == 1
    assert "cannot load Kubernetes credentials" in result.stderr
    assert "Traceback" not in result.stderr
