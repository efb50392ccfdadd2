"""Honest capacity: what nodes() reports is what the scheduler would give the pools.

Each test makes its own Nodes (named after the test) and pods bound to them,
on the shared API server, and removes them after.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubekit import desired_of, make_node, reconciler, write_config

from reconciler.config.model import KubernetesSettings, Settings
from reconciler.plan.planner import make_plan
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes import nodes as k8s_nodes
from reconciler.runtimes.kubernetes.client import Api
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime

pytestmark = pytest.mark.slow
GPU_SETTINGS = KubernetesSettings(gpu_node_selector={"accelerator": "nvidia"})


def test_pod_requests_count_as_the_scheduler_counts() -> None:
    pod = {"spec": {"nodeName": "n", "overhead": {"cpu": "10m"},
                    "containers": [{"resources": {"requests": {"cpu": "250m", "memory": "1Gi",
                                                               m.GPU: "1"}}},
                                   {"resources": {"requests": {"cpu": "0.25"}}}],
                    "initContainers": [{"resources": {"requests": {"cpu": "2",
                                                                   "memory": "1Mi"}}}]}}
    assert k8s_nodes.pod_requests(pod) == (2010, 2**30, 1)


def test_taints_and_selectors_are_judged_by_the_pools_of_each_class() -> None:
    def node(allocatable: dict[str, str], taints: list[dict[str, str]],
             labels: dict[str, str] | None = None) -> dict:
        return {"metadata": {"name": "n", "labels": labels or {}}, "spec": {"taints": taints},
                "status": {"allocatable": allocatable}}

    gpu = {"cpu": "8", "memory": "8Gi", "pods": "1k", m.GPU: "4"}
    cpu = {"cpu": "8", "memory": "8Gi", "pods": "1k"}
    nvidia = {"key": m.GPU, "effect": "NoSchedule", "value": "present"}
    dedicated = {"key": "dedicated", "value": "ml", "effect": "NoExecute"}
    soft = {"key": "spot", "effect": "PreferNoSchedule"}
    labels = {"accelerator": "nvidia"}
    settings = GPU_SETTINGS
    assert k8s_nodes.nodes([node(gpu, [nvidia, soft], labels)], [], settings)[0].pods == 1000
    assert not k8s_nodes.nodes([node(gpu, [nvidia], {})], [], settings)  # selector missed
    assert not k8s_nodes.nodes([node(gpu, [nvidia, dedicated], labels)], [], settings)
    tolerant = KubernetesSettings(gpu_node_selector={"accelerator": "nvidia"},
                                  gpu_tolerations=({"key": "dedicated", "operator": "Exists"},))
    assert k8s_nodes.nodes([node(gpu, [nvidia, dedicated], labels)], [], tolerant)
    assert not k8s_nodes.nodes([node(cpu, [nvidia])], [], tolerant)  # cpu pools tolerate none
    assert k8s_nodes.nodes([node(cpu, [soft])], [], tolerant)


def test_when_no_gpu_node_can_take_a_gpu_pool_the_reasons_are_named() -> None:
    def node(name: str, labels: dict[str, str], **spec: object) -> dict:
        return {"metadata": {"name": name, "labels": labels}, "spec": spec,
                "status": {"allocatable": {"cpu": "8", "memory": "8Gi", "pods": "10",
                                           m.GPU: "1"}}}

    items = [node("a", {"accelerator": "nvidai"}), node("b", {}),
             node("c", {"accelerator": "nvidia"}, unschedulable=True),
             node("d", {"accelerator": "nvidia"},
                  taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]),
             {"metadata": {"name": "cpu"}, "status": {"allocatable": {"cpu": "8"}}}]
    kept = k8s_nodes.nodes(items, [], GPU_SETTINGS)
    assert [n.name for n in kept] == ["cpu"]
    why = k8s_nodes.unusable_gpu_nodes(items, kept, GPU_SETTINGS, shown=4)
    assert why == (f"none of the 4 nodes with {m.GPU} can take a gpu pool: "
                   "a misses gpuNodeSelector accelerator=nvidia (it has accelerator=nvidai); "
                   "b misses gpuNodeSelector accelerator=nvidia; c is cordoned; d has the "
                   "taint dedicated=ml:NoSchedule, which gpuTolerations do not tolerate")
    assert "; and 1 more" in str(k8s_nodes.unusable_gpu_nodes(items, kept, GPU_SETTINGS))
    usable = k8s_nodes.nodes([node("e", {"accelerator": "nvidia"})], [], GPU_SETTINGS)
    assert k8s_nodes.unusable_gpu_nodes(items, usable, GPU_SETTINGS) is None
    assert k8s_nodes.unusable_gpu_nodes(items[-1:], kept, GPU_SETTINGS) is None  # no gpus


def test_a_mistyped_gpu_node_selector_is_named_once_on_the_real_cluster(
        kubeconfig: Path, prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every GPU node of the shared API server misses the selector: the plan's "there are no
    gpu nodes" comes with a warning that says why, once per runtime's cluster and instance."""
    typo = Settings(kubernetes=KubernetesSettings(
        namespace_prefix=prefix, gpu_node_selector={"accelerator": "nvidai"}))
    for _ in range(2):
        runtime = KubernetesRuntime(typo, kubeconfig=kubeconfig)
        try:
            assert not any(n.gpu for n in runtime.nodes())
        finally:
            runtime.close()
    said = [r.getMessage() for r in caplog.records if "can take a gpu pool" in r.getMessage()]
    assert len(said) == 1, said
    assert "gpu-node-1 misses gpuNodeSelector accelerator=nvidai (it has accelerator=nvidia)" \
        in said[0]


@pytest.fixture
def own_nodes(api: Api, request: pytest.FixtureRequest) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        for pod in api.list("/api/v1/pods", fields=f"spec.nodeName={name}").items:
            meta = pod["metadata"]
            api.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
        api.delete(f"/api/v1/nodes/{name}")


def bound_pod(api: Api, namespace: str, name: str, node: str, cpu: str, memory: str,
              labels: dict[str, str] | None = None, phase: str = "Running") -> None:
    api.request("POST", f"/api/v1/namespaces/{namespace}/pods", body={
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "resources": {
            "requests": {"cpu": cpu, "memory": memory}}}]}})
    api.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status",
                content_type="application/merge-patch+json", body={"status": {"phase": phase}})


def test_foreign_pods_and_taints_reduce_the_capacity_a_plan_sees(
        tmp_path: Path, prefix: str, api: Api, settings: Settings,
        kubeconfig: Path, own_nodes: list[str]) -> None:
    name = f"{prefix}node"
    own_nodes += [name, f"{prefix}tainted", f"{prefix}gpu-bare"]
    make_node(api, name, {"cpu": "4", "memory": "8Gi", "pods": "1k"}, {})
    make_node(api, f"{prefix}tainted", {"cpu": "64", "memory": "64Gi", "pods": "110"}, {},
              taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    make_node(api, f"{prefix}gpu-bare", {"cpu": "8", "memory": "8Gi", "pods": "10",
                                         m.GPU: "8"}, {})  # misses gpuNodeSelector
    api.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{prefix}others"}})
    others = f"{prefix}others"
    bound_pod(api, others, "database", name, "3", "2Gi")
    bound_pod(api, others, "finished", name, "4", "4Gi", phase="Succeeded")  # holds nothing
    # another reconciler instance's engine counts; one of this instance does not
    bound_pod(api, others, "their-engine", name, "500m", "1Gi",
              labels={m.MANAGED_BY: m.MANAGER, m.INSTANCE_LABEL: "someone-else"})
    bound_pod(api, others, "our-engine", name, "500m", "1Gi",
              labels={m.MANAGED_BY: m.MANAGER,
                      m.INSTANCE_LABEL: m.instance_label(settings.kubernetes)})
    runtime = KubernetesRuntime(settings, kubeconfig=kubeconfig)
    try:
        found = {n.name: n for n in runtime.nodes()}
        assert f"{prefix}tainted" not in found and f"{prefix}gpu-bare" not in found
        node = found[name]
        assert (node.cpu_millis, node.memory_bytes, node.pods) == (500, 5 * 2**30, 998)
        assert found["gpu-node-1"].gpu == 2  # tolerated and selected: still there
        # the plan places against what is left: 500m on this node, 8 CPUs on cpu-node-1
        desired, _ = desired_of(write_config(tmp_path / "repo", prefix, vision=False,
                                             sentiment_replicas=2))
        alone = [node]
        plan = make_plan(desired, runtime.observe(), alone, runtime="kubernetes")
        assert plan.applyable  # 2 x 100m fit in the 500m left
        big = desired_of(write_config(tmp_path / "big", prefix, vision=False,
                                      sentiment_replicas=6, max_engines=10))[0]
        refused = make_plan(big, runtime.observe(), alone, runtime="kubernetes")
        assert not refused.applyable
        assert "500m CPU allocatable on cpu nodes, 600m needed" in str(refused.errors[0])
    finally:
        runtime.close()
        api.delete(f"/api/v1/namespaces/{others}")


def test_pods_1k_is_a_quantity_for_plan_apply_and_status(
        tmp_path: Path, prefix: str, api: Api, kubeconfig: Path,
        own_nodes: list[str]) -> None:
    """The API server's own spelling of 1000: it crashed plan, apply and status."""
    own_nodes.append(f"{prefix}big")
    make_node(api, f"{prefix}big", {"cpu": "64", "memory": "256Gi", "pods": "1k"}, {})
    root = write_config(tmp_path / "repo", prefix, vision=False)
    common = ["--runtime", "kubernetes", "--kubeconfig", str(kubeconfig),
              "--state", str(tmp_path / "state")]
    plan = reconciler("plan", str(root), *common)
    assert plan.returncode == 0 and "Traceback" not in plan.stderr, plan.stderr
    apply = reconciler("apply", str(root), *common, "--auto-approve")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    status = reconciler("status", *common, "--instance", prefix, "--format", "json")
    # exit 1: envtest runs no pods, so the pool is below its reservation; no traceback
    assert status.returncode == 1 and "not ready: pool" in status.stderr, status.stderr
    assert "Traceback" not in status.stderr
    assert '"pods": 1000' in status.stdout
