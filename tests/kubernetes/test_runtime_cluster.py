"""Ownership, nodes and placement, readiness, pod status and errors, on a real API server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubekit import (
    apply_all,
    desired_of,
    make_node,
    plan_for,
    set_deployment_status,
    write_config,
)

from reconciler.apply import execute
from reconciler.cli.status import status_json
from reconciler.errors import RuntimeFault
from reconciler.plan.planner import make_plan
from reconciler.plan.plans import Action, Op
from reconciler.runtimes.base import NotReady
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes.client import Api, ApiError
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime
from reconciler.states import ResourceKind, Tenant

pytestmark = pytest.mark.slow


def foreign_deployment(name: str, namespace: str) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def test_objects_without_our_label_are_never_touched(tmp_path: Path, prefix: str, api: Api,
                                                     runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix)
    apply_all(plan_for(root, runtime), runtime)
    # someone else's Deployment in our namespace: not observed, never pruned
    api.request("POST", f"/apis/apps/v1/namespaces/{prefix}alice/deployments",
                body=foreign_deployment("theirs", f"{prefix}alice"))
    assert plan_for(root, runtime).empty
    # someone else's Deployment squatting on a pool's name: apply refuses, names it
    desired, _ = desired_of(root)
    pool = next(p for p in desired.pools if p.caller == "bob")
    name = m.deployment_name(pool.id)
    api.delete(f"/apis/apps/v1/namespaces/{prefix}bob/deployments/{name}")
    api.request("POST", f"/apis/apps/v1/namespaces/{prefix}bob/deployments",
                body=foreign_deployment(name, f"{prefix}bob"))
    plan = plan_for(root, runtime)
    assert [(a.op, a.id) for a in plan.actions] == [(Op.CREATE, pool.id)]
    with pytest.raises(RuntimeFault, match=f"Deployment {name} exists and is not managed") as err:
        runtime.apply(plan.actions[0])
    assert not err.value.retryable
    theirs = api.get(f"/apis/apps/v1/namespaces/{prefix}bob/deployments/{name}")
    assert theirs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    assert api.get(f"/apis/apps/v1/namespaces/{prefix}alice/deployments/theirs")


def test_a_foreign_namespace_is_neither_adopted_nor_deleted(prefix: str, api: Api,
                                                           runtime: KubernetesRuntime) -> None:
    api.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{prefix}carol"}})
    create = Action(Op.CREATE, ResourceKind.TENANT, "carol", after=Tenant("carol"))
    delete = Action(Op.DELETE, ResourceKind.TENANT, "carol", before=Tenant("carol"))
    for action in (create, delete):
        with pytest.raises(RuntimeFault, match=f"Namespace {prefix}carol exists and is not"):
            runtime.apply(action)
    found = api.get(f"/api/v1/namespaces/{prefix}carol")["metadata"]
    assert m.MANAGED_BY not in (found.get("labels") or {})
    assert not found.get("deletionTimestamp")
    api.delete(f"/api/v1/namespaces/{prefix}carol")


def test_nodes_and_gpu_placement(tmp_path: Path, prefix: str, api: Api,
                                 runtime: KubernetesRuntime) -> None:
    nodes = {n.name: n for n in runtime.nodes()}
    assert nodes["gpu-node-1"].gpu == 2 and nodes["gpu-node-1"].processor == "gpu"
    assert nodes["cpu-node-1"].processor == "cpu"
    assert nodes["cpu-node-1"].cpu_millis == 8000
    assert nodes["cpu-node-1"].memory_bytes == 16 * 2**30
    assert nodes["gpu-node-1"].labels["accelerator"] == "nvidia"

    desired, _ = desired_of(write_config(tmp_path / "repo", prefix))
    live = runtime.observe()
    assert make_plan(desired, live, list(nodes.values()), runtime="kubernetes").applyable
    cpu_only = [n for n in nodes.values() if n.processor == "cpu"]
    refused = make_plan(desired, live, cpu_only, runtime="kubernetes")
    assert not refused.applyable
    assert any("vision" in e.message for e in refused.errors)


def test_cordoned_and_not_ready_nodes_are_left_out(api: Api, runtime: KubernetesRuntime,
                                                   request: pytest.FixtureRequest) -> None:
    allocatable = {"cpu": "4", "memory": "8Gi", "pods": "10"}
    suffix = request.node.name[-6:].lower().replace("_", "-")
    make_node(api, f"down-{suffix}", allocatable, {},
              conditions=[{"type": "Ready", "status": "False", "reason": "KubeletDown"}])
    make_node(api, f"cordoned-{suffix}", allocatable, {})
    api.request("PATCH", f"/api/v1/nodes/cordoned-{suffix}",
                content_type="application/merge-patch+json",
                body={"spec": {"unschedulable": True}})
    names = {n.name for n in runtime.nodes()}
    assert "cpu-node-1" in names
    assert f"down-{suffix}" not in names and f"cordoned-{suffix}" not in names
    for name in (f"down-{suffix}", f"cordoned-{suffix}"):
        api.delete(f"/api/v1/nodes/{name}")


def test_wait_ready_follows_the_deployment_status(tmp_path: Path, prefix: str, api: Api,
                                                  runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix, vision=False)
    apply_all(plan_for(root, runtime), runtime)
    pool = runtime.observe().pools[0]
    name = m.deployment_name(pool.id)
    started = time.monotonic()
    with pytest.raises(NotReady, match="0 of 2 replicas ready"):
        runtime.wait_ready(pool.id, 2, timeout=0.3)
    assert time.monotonic() - started < 5
    set_deployment_status(api, f"{prefix}alice", name, ready=1)
    with pytest.raises(NotReady, match="1 of 2"):
        runtime.wait_ready(pool.id, 2, timeout=0.2)
    set_deployment_status(api, f"{prefix}alice", name, ready=2)
    runtime.wait_ready(pool.id, 2, timeout=5)
    # a spec change the controller has not seen yet: not ready until it has
    api.request("PATCH", f"/apis/apps/v1/namespaces/{prefix}alice/deployments/{name}",
                content_type="application/merge-patch+json", body={"spec": {"replicas": 3}})
    assert runtime.observe().ready(pool.id) == 0
    with pytest.raises(NotReady):
        runtime.wait_ready(pool.id, 2, timeout=0.2)
    with pytest.raises(NotReady, match="does not exist"):
        runtime.wait_ready("alice.acme.nothing.0123456789ab", 1, timeout=1)


def test_pods_give_replica_status_and_errors(tmp_path: Path, prefix: str, api: Api,
                                             runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix)
    apply_all(plan_for(root, runtime), runtime)
    pool = next(p for p in runtime.observe().pools if p.caller == "bob")  # bob has no quota
    template = m.deployment_manifest(pool, runtime.settings)["spec"]["template"]
    namespace = f"{prefix}bob"
    for name, ready, waiting in (("pod-a", True, None), ("pod-b", False, "CrashLoopBackOff")):
        api.request("POST", f"/api/v1/namespaces/{namespace}/pods", body={
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, **template["metadata"]}, "spec": template["spec"]})
        container = {"name": m.CONTAINER, "ready": ready, "restartCount": 0, "image": "x",
                     "imageID": "", "state": {"waiting": {"reason": waiting, "message": "boom"}}
                     if waiting else {"running": {}}}
        api.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status",
                    content_type="application/merge-patch+json", body={"status": {
                        "phase": "Running", "startTime": "2026-11-22T10:00:00Z",
                        "conditions": [{"type": "Ready", "status": str(ready)}],
                        "containerStatuses": [container]}})
    live = runtime.observe()
    status = live.status[pool.id]
    assert [(r.id, r.state) for r in status.replicas] == [("pod-a", "ready"),
                                                          ("pod-b", "failed")]
    assert status.replicas[0].model_digest == pool.model_digest
    assert status.error == "pod pod-b: CrashLoopBackOff: boom"
    data = status_json(live, {})
    entry = next(p for p in data["pools"] if p["id"] == pool.id)
    assert entry["replicaStatus"][0] == {"pid": "pod-a", "state": "ready",
                                         "modelDigest": pool.model_digest,
                                         "startedAt": "2026-11-22T10:00:00Z"}
    # a failing rollout condition is the pool's error
    api.request("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/"
                f"{m.deployment_name(pool.id)}/status",
                content_type="application/merge-patch+json", body={"status": {"conditions": [
                    {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                     "message": "exceeded quota"}]}})
    assert runtime.observe().status[pool.id].error == "FailedCreate: exceeded quota"


def test_api_errors_become_runtime_faults(api: Api, settings, tmp_path: Path) -> None:
    with pytest.raises(ApiError) as invalid:
        api.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": "Not_Valid"}})
    assert invalid.value.status == 422 and not invalid.value.retryable
    assert "Not_Valid" in str(invalid.value)
    with pytest.raises(ApiError) as conflict:
        for _ in range(2):
            api.request("POST", "/api/v1/namespaces", body={
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dup-ns"}})
    assert conflict.value.status == 409 and conflict.value.retryable
    api.delete("/api/v1/namespaces/dup-ns")

    from envtest import free_port

    dead = tmp_path / "dead-kubeconfig"  # a port nothing listens on
    dead.write_text(f"""apiVersion: v1
kind: Config
current-context: dead
clusters: [{{name: dead, cluster: {{server: "https://127.0.0.1:{free_port()}",
  insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: x}}}}]
contexts: [{{name: dead, context: {{cluster: dead, user: u}}}}]
""")
    offline = KubernetesRuntime(settings, kubeconfig=dead)
    offline.api.client.configuration.retries = 0
    with pytest.raises(RuntimeFault, match="cannot reach the API server") as down:
        offline.observe()
    assert down.value.retryable
    offline.close()


def post_configmap(api: Api, namespace: str, name: str = "theirs") -> None:
    api.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"owner": "someone else"}})


def remove_everything(root: Path, prefix: str) -> None:
    """The config without alice's and bob's reservations and without alice's quota
    (user0..2 keep pools: a plan deleting most pools would be refused)."""
    write_config(root, prefix, alice=False, vision=False, extra_users=3)
    (root / "limits.yaml").unlink()


def test_a_namespace_holding_foreign_objects_outlives_its_tenant_and_quota(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime,
        caplog: pytest.LogCaptureFixture) -> None:
    root = write_config(tmp_path / "repo", prefix, extra_users=3)
    apply_all(plan_for(root, runtime), runtime)
    for account in ("alice", "bob"):  # bob's namespace is a Tenant's; alice's also a Quota's
        post_configmap(api, f"{prefix}{account}")
    remove_everything(root, prefix)
    plan = plan_for(root, runtime)
    assert sorted((str(a.op), str(a.kind), a.id) for a in plan.actions if
                  a.kind is not ResourceKind.WARM_POOL) == [
        ("delete", "Quota", "alice"), ("delete", "Tenant", "alice"), ("delete", "Tenant", "bob")]
    with caplog.at_level("WARNING", logger="reconciler.runtimes.kubernetes"):
        apply_all(plan, runtime)
    for account in ("alice", "bob"):
        namespace = api.get(f"/api/v1/namespaces/{prefix}{account}")["metadata"]
        assert not namespace.get("deletionTimestamp"), account
        assert m.SPEC_ANNOTATION not in (namespace.get("annotations") or {})
        theirs = api.get(f"/api/v1/namespaces/{prefix}{account}/configmaps/theirs")
        assert theirs["data"] == {"owner": "someone else"}
        assert f"namespace {prefix}{account} is kept" in caplog.text
    assert "ConfigMap/theirs" in caplog.text
    assert api.get_or_none(f"/api/v1/namespaces/{prefix}alice/resourcequotas/"
                           f"{m.QUOTA_NAME}") is None
    live = runtime.observe()
    assert [t.account for t in live.tenants] == ["user0", "user1", "user2"]
    assert not live.quotas
    assert plan_for(root, runtime).empty


def test_a_namespace_with_only_our_objects_goes_with_its_tenant_and_quota(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    """What the cluster makes in every namespace (the root CA ConfigMap, service-account
    tokens) and what carries our label (a pool's pods) do not keep a namespace."""
    root = write_config(tmp_path / "repo", prefix, extra_users=3)
    apply_all(plan_for(root, runtime), runtime)
    alice = f"{prefix}alice"
    post_configmap(api, alice, "kube-root-ca.crt")
    api.request("POST", f"/api/v1/namespaces/{alice}/secrets", body={
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "default-token-x1",
                     "annotations": {"kubernetes.io/service-account.name": "default"}}})
    api.request("POST", f"/api/v1/namespaces/{alice}/pods", body={
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "engine-1", "labels": {  # a pool's pod: the template's labels
            m.MANAGED_BY: m.MANAGER, m.INSTANCE_LABEL: m.instance_label(runtime.settings)}},
        "spec": {"containers": [{"name": "engine", "image": "registry.example/x"}]}})
    remove_everything(root, prefix)
    apply_all(plan_for(root, runtime), runtime)
    for account in ("alice", "bob"):
        namespace = api.get(f"/api/v1/namespaces/{prefix}{account}")["metadata"]
        assert namespace.get("deletionTimestamp"), account  # envtest never finalizes it
    assert plan_for(root, runtime).empty


def test_another_instances_object_keeps_the_namespace_it_lives_in(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    # A Deployment with our managed-by label but another instance's label (a staging
    # reconciler's, or one copied by hand) lives in bob's namespace. Bob leaves the config:
    # his namespace would go, and the other instance's Deployment with it; it is kept.
    root = write_config(tmp_path / "repo", prefix)
    apply_all(plan_for(root, runtime), runtime)
    namespace = f"{prefix}bob"
    theirs = foreign_deployment("staging-pool", namespace)
    theirs["metadata"]["labels"].update({m.MANAGED_BY: m.MANAGER,
                                         m.INSTANCE_LABEL: f"{prefix}staging"})
    api.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=theirs)
    write_config(root, prefix, vision=False)  # bob reserves nothing any more
    plan = plan_for(root, runtime)
    assert ("delete", "Tenant", "bob") in [(str(a.op), str(a.kind), a.id) for a in plan.actions]
    result = execute(plan, runtime, wait_timeout=1)
    assert result.ok, result.to_json()
    assert not api.get(f"/api/v1/namespaces/{namespace}")["metadata"].get("deletionTimestamp")
    assert api.get_or_none(f"/apis/apps/v1/namespaces/{namespace}/deployments/staging-pool")
    assert plan_for(root, runtime).empty
