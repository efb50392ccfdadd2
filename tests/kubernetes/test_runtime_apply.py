"""The kubernetes runtime against a real API server: apply a plan, observe it back.

Each test plans from a real config repo (load_config -> compile_config ->
make_plan with the runtime's observe() and nodes()), applies the actions
through KubernetesRuntime.apply, and reads the cluster with plain API calls.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kubekit import apply_all, desired_of, plan_for, set_deployment_status, write_config

from reconciler.apply import ApplyResult, execute
from reconciler.pipeline import plan_config
from reconciler.plan.plans import Op
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes.client import Api
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime

pytestmark = pytest.mark.slow


def deployment(api: Api, prefix: str, caller: str, pool_id: str) -> dict:
    return api.get(f"/apis/apps/v1/namespaces/{prefix}{caller}/deployments/"
                   f"{m.deployment_name(pool_id)}")


def ops(plan) -> list[tuple[str, str, str]]:
    return [(str(a.op), str(a.kind), a.id) for a in plan.actions]


def test_apply_then_observe_equals_desired(tmp_path: Path, prefix: str, api: Api,
                                           runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix)
    first = plan_for(root, runtime)
    assert first.summary["create"] == 5  # tenants alice and bob, alice's quota, 2 pools
    apply_all(first, runtime)

    desired, _ = desired_of(root)
    live = runtime.observe()
    assert live.tenants == desired.tenants
    assert live.quotas == desired.quotas
    assert live.pools == desired.pools
    assert plan_for(root, runtime).empty

    namespaces = {n["metadata"]["name"] for n in
                  api.get("/api/v1/namespaces", labelSelector=m.SELECTOR)["items"]}
    assert {f"{prefix}alice", f"{prefix}bob"} <= namespaces
    quota = api.get(f"/api/v1/namespaces/{prefix}alice/resourcequotas/{m.QUOTA_NAME}")
    assert quota["spec"]["hard"] == {"pods": "5", "requests.nvidia.com/gpu": "2"}

    vision = next(p for p in desired.pools if p.name == "vision")
    pod = deployment(api, prefix, "bob", vision.id)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"][m.GPU] == "1"
    assert pod["nodeSelector"] == {"accelerator": "nvidia"}
    assert pod["tolerations"][0]["key"] == m.GPU
    sentiment = next(p for p in desired.pools if p.name == "sentiment")
    cpu_pod = deployment(api, prefix, "alice", sentiment.id)["spec"]["template"]["spec"]
    assert m.GPU not in cpu_pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in cpu_pod and "tolerations" not in cpu_pod


def test_revision_ignores_status_but_follows_spec(tmp_path: Path, prefix: str, api: Api,
                                                  runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix, vision=False)
    apply_all(plan_for(root, runtime), runtime)
    before = runtime.observe()
    pool = before.pools[0]
    set_deployment_status(api, f"{prefix}alice", m.deployment_name(pool.id), ready=2)
    after = runtime.observe()
    assert after.revision == before.revision
    assert after.ready(pool.id) == 2
    write_config(root, prefix, vision=False, sentiment_replicas=3)
    apply_all(plan_for(root, runtime), runtime)
    assert runtime.observe().revision != before.revision


def test_scale_reload_update_delete(tmp_path: Path, prefix: str, api: Api,
                                    runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix)
    apply_all(plan_for(root, runtime), runtime)
    desired, _ = desired_of(root)
    pool = next(p for p in desired.pools if p.name == "sentiment")
    generation = deployment(api, prefix, "alice", pool.id)["metadata"]["generation"]

    write_config(root, prefix, sentiment_replicas=3)
    plan = plan_for(root, runtime)
    assert ops(plan) == [("scale", "WarmPool", pool.id)]
    apply_all(plan, runtime)
    scaled = deployment(api, prefix, "alice", pool.id)
    assert scaled["spec"]["replicas"] == 3
    assert scaled["metadata"]["generation"] > generation

    write_config(root, prefix, sentiment_replicas=3, model="m2")
    plan = plan_for(root, runtime)
    assert {a.op for a in plan.actions} == {Op.RELOAD}
    apply_all(plan, runtime)
    reloaded = deployment(api, prefix, "alice", pool.id)["spec"]
    annotations = reloaded["template"]["metadata"]["annotations"]
    reloaded_pool = desired_of(root)[0].pool(pool.id)
    assert reloaded_pool is not None
    assert annotations[m.DIGEST_ANNOTATION] == reloaded_pool.model_digest
    assert annotations[m.DIGEST_ANNOTATION] != pool.model_digest
    assert reloaded["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}

    write_config(root, prefix, sentiment_replicas=3, model="m2", image="registry.example/v2")
    plan = plan_for(root, runtime)
    assert ops(plan) == [("update", "WarmPool", pool.id)]
    apply_all(plan, runtime)
    container = deployment(api, prefix, "alice", pool.id)["spec"]["template"]["spec"][
        "containers"][0]
    assert container["image"] == "registry.example/v2"
    assert plan_for(root, runtime).empty

    write_config(root, prefix, sentiment_replicas=3, model="m2", image="registry.example/v2",
                 vision=False)
    plan = plan_for(root, runtime)
    assert [(a.op, a.kind) for a in plan.actions] == [("delete", "WarmPool"),
                                                      ("delete", "Tenant")]
    apply_all(plan, runtime)
    assert plan_for(root, runtime).empty
    assert api.get_or_none(f"/apis/apps/v1/namespaces/{prefix}bob/deployments/"
                           f"{m.deployment_name(plan.actions[0].id)}") is None


def test_drift_by_hand_shows_in_the_next_plan(tmp_path: Path, prefix: str, api: Api,
                                              runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix, vision=False)
    apply_all(plan_for(root, runtime), runtime)
    pool = runtime.observe().pools[0]
    path = (f"/apis/apps/v1/namespaces/{prefix}alice/deployments/"
            f"{m.deployment_name(pool.id)}")
    api.request("PATCH", path, content_type="application/merge-patch+json",
                body={"spec": {"replicas": 7}})
    plan = plan_for(root, runtime)
    assert [(str(a.op), a.changes[0].before, a.changes[0].after) for a in plan.actions] == [
        ("scale", 7, 2)]
    apply_all(plan, runtime)
    assert api.get(path)["spec"]["replicas"] == 2


def test_tenant_delete_keeps_a_namespace_that_holds_a_quota(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix)
    apply_all(plan_for(root, runtime), runtime)
    write_config(root, prefix, alice=False)  # alice calls nothing, keeps her CapacityLimit
    plan = plan_for(root, runtime)
    assert sorted((str(a.op), str(a.kind)) for a in plan.actions) == [
        ("delete", "Tenant"), ("delete", "WarmPool")]
    apply_all(plan, runtime)
    namespace = api.get(f"/api/v1/namespaces/{prefix}alice")
    assert not namespace["metadata"].get("deletionTimestamp")
    assert plan_for(root, runtime).empty
    live = runtime.observe()
    assert [t.account for t in live.tenants] == ["bob"]
    assert [q.account for q in live.quotas] == ["alice"]


def test_a_version_move_deletes_the_old_pool_once_the_new_one_is_ready(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    """The apply executor's make-before-break on this runtime: the old Deployment goes only
    after the new one reports ready (the test plays the Deployment controller)."""
    root = write_config(tmp_path / "repo", prefix, vision=False)
    apply_all(plan_for(root, runtime), runtime)
    old = runtime.observe().pools[0]
    write_config(root, prefix, vision=False, new_version=True)
    plan = plan_for(root, runtime)
    new_id = next(a.id for a in plan.actions if a.op is Op.CREATE)
    assert [a.wait_for for a in plan.actions if a.op is Op.DELETE] == [new_id]

    deferred = execute(plan, runtime, wait_timeout=0.3)  # nobody makes it ready: deferred
    assert [e.outcome for e in deferred.deferred] == ["deferred"] and deferred.ok
    assert runtime.observe().pool(old.id) is not None

    plan = plan_for(root, runtime)
    assert [(a.op, a.id) for a in plan.actions] == [(Op.DELETE, old.id)]
    results: list[ApplyResult] = []
    worker = threading.Thread(target=lambda: results.append(
        execute(plan, runtime, wait_timeout=20)))
    worker.start()
    set_deployment_status(api, f"{prefix}alice", m.deployment_name(new_id), ready=2)
    worker.join(timeout=30)
    assert results and results[0].ok and not results[0].deferred
    assert runtime.observe().pool(old.id) is None
    assert plan_for(root, runtime).empty


def test_changed_gpu_tolerations_update_the_gpu_pools_only(tmp_path: Path, prefix: str,
                                                          api: Api,
                                                          runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix)
    apply_all(plan_for(root, runtime), runtime)
    write_config(root, prefix, gpu_tolerations="[{key: dedicated, operator: Equal, "
                                               "value: ml, effect: NoExecute}]")
    plan = plan_config(root, runtime).plan
    vision = next(p for p in desired_of(root)[0].pools if p.name == "vision")
    assert ops(plan) == [("update", "WarmPool", vision.id)]
    assert [c.path for c in plan.actions[0].changes] == ["scheduling"]

    result = execute(plan, runtime, wait_timeout=1)
    assert result.ok, result.to_json()
    pod = deployment(api, prefix, "bob", vision.id)["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml",
                                   "effect": "NoExecute"}, m.GPU_TOLERATION]
    assert pod["nodeSelector"] == {"accelerator": "nvidia"}
    assert plan_config(root, runtime).plan.empty  # observe() reads the same scheduling back
