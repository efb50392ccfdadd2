"""Instance scoping: two reconcilers share one API server and never touch each other's
objects; a namespacePrefix change under an explicit instance moves the pools; a delete
that finds nothing is "already gone"; a namespace being deleted makes writes wait."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from kubekit import apply_all, desired_of, plan_for, set_deployment_status, write_config

from reconciler.apply import ApplyResult, Outcome, execute
from reconciler.config.model import Settings
from reconciler.plan.plans import Op
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes.client import Api
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime

pytestmark = pytest.mark.slow


def with_instance(root: Path, instance: str) -> None:
    settings = root / "settings.yaml"
    settings.write_text(settings.read_text().replace(
        "  kubernetes:\n", f"  kubernetes:\n    instance: {instance}\n"))


def runtime_for(root: Path, kubeconfig: Path) -> KubernetesRuntime:
    return KubernetesRuntime(desired_of(root)[1], kubeconfig=kubeconfig, poll_interval=0.05)


def names(api: Api, path: str, labels: str) -> set[str]:
    return {o["metadata"]["name"] for o in api.list(path, labels=labels).items}


def test_two_instances_on_one_api_server_never_touch_each_other(
        tmp_path: Path, prefix: str, api: Api, kubeconfig: Path) -> None:
    first = write_config(tmp_path / "first", f"{prefix}a-")
    second = write_config(tmp_path / "second", f"{prefix}b-")  # the same accounts
    one, two = runtime_for(first, kubeconfig), runtime_for(second, kubeconfig)
    try:
        apply_all(plan_for(first, one), one)
        theirs = {path: api.get(path)["metadata"]["resourceVersion"] for path in (
            f"/api/v1/namespaces/{prefix}a-alice",
            f"/api/v1/namespaces/{prefix}a-alice/resourcequotas/{m.QUOTA_NAME}")}
        plan = plan_for(second, two)  # sees none of the first's objects as its own
        assert plan.summary == {"create": 5, "scale": 0, "reload": 0, "update": 0,
                                "delete": 0}
        assert execute(plan, two, wait_timeout=1).ok
        assert plan_for(first, one).empty and plan_for(second, two).empty
        # the second goes away entirely: the first's objects stay as they were
        for name in ("reservations.yaml", "limits.yaml"):
            (second / name).write_text("")
        plan = desired_plan = plan_for(second, two)
        assert {str(a.op) for a in plan.actions} == {"delete"}
        assert all(m.located(a.id)[1] is None for a in desired_plan.actions)
        from reconciler.plan.planner import make_plan

        desired, settings = desired_of(second)
        plan = make_plan(desired, two.observe(), two.nodes(), runtime="kubernetes",
                         safety=settings.safety, allow_mass_delete=True)
        result = execute(plan, two, wait_timeout=1)
        assert result.ok and result.counts["deleted"] == len(plan.actions)
        assert {path: api.get(path)["metadata"]["resourceVersion"] for path in theirs} == theirs
        assert plan_for(first, one).empty
        # a third instance with the first's prefix refuses the first's namespaces
        third = write_config(tmp_path / "third", f"{prefix}a-")
        with_instance(third, f"{prefix}other")
        three = runtime_for(third, kubeconfig)
        plan = plan_for(third, three)
        result = execute(plan, three, wait_timeout=1)
        three.close()
        failed = {e.action_id: e.message for e in result.failed}
        assert "belongs to another reconciler instance" in failed["alice"]
        assert plan_for(first, one).empty
    finally:
        one.close()
        two.close()


def test_a_prefix_change_under_an_explicit_instance_moves_make_before_break(
        tmp_path: Path, prefix: str, api: Api, kubeconfig: Path) -> None:
    root = write_config(tmp_path / "repo", f"{prefix}old-", vision=False)
    with_instance(root, f"{prefix}prod")
    runtime = runtime_for(root, kubeconfig)
    apply_all(plan_for(root, runtime), runtime)
    old_pool = runtime.observe().pools[0]
    runtime.close()

    write_config(root, f"{prefix}new-", vision=False)
    with_instance(root, f"{prefix}prod")
    runtime = runtime_for(root, kubeconfig)
    try:
        plan = plan_for(root, runtime)
        moved = m.elsewhere(old_pool.id, f"{prefix}old-alice")
        assert [(str(a.op), str(a.kind), a.id) for a in plan.actions] == [
            ("create", "Tenant", "alice"), ("create", "Quota", "alice"),
            ("create", "WarmPool", old_pool.id),
            ("delete", "WarmPool", moved),
            ("delete", "Quota", f"alice@{prefix}old-alice"),
            ("delete", "Tenant", f"alice@{prefix}old-alice")]
        assert plan.actions[3].wait_for == old_pool.id  # make-before-break
        results: list[ApplyResult] = []
        worker = threading.Thread(target=lambda: results.append(
            execute(plan, runtime, wait_timeout=20)))
        worker.start()
        new_deployment = f"/apis/apps/v1/namespaces/{prefix}new-alice/deployments/" \
                         f"{m.deployment_name(old_pool.id)}"
        old_deployment = new_deployment.replace(f"{prefix}new-", f"{prefix}old-")
        for _ in range(400):  # the new pool appears; the old one must still serve
            if api.get_or_none(new_deployment) is not None:
                break
            threading.Event().wait(0.05)
        assert api.get_or_none(old_deployment) is not None
        set_deployment_status(api, f"{prefix}new-alice", m.deployment_name(old_pool.id), 2)
        worker.join(timeout=30)
        assert results and results[0].ok, results[0].to_json() if results else "no result"
        assert api.get_or_none(old_deployment) is None
        old_ns = api.get(f"/api/v1/namespaces/{prefix}old-alice")["metadata"]
        assert old_ns.get("deletionTimestamp")  # envtest never finalizes it
        assert plan_for(root, runtime).empty
    finally:
        runtime.close()


def test_a_prefix_change_of_the_default_instance_warns_that_the_old_objects_remain(
        tmp_path: Path, prefix: str, kubeconfig: Path) -> None:
    root = write_config(tmp_path / "repo", f"{prefix}old-", vision=False)
    runtime = runtime_for(root, kubeconfig)
    apply_all(plan_for(root, runtime), runtime)
    runtime.close()
    write_config(root, f"{prefix}new-", vision=False)
    runtime = runtime_for(root, kubeconfig)
    try:
        plan = plan_for(root, runtime)
        assert plan.summary["create"] == 3 and plan.summary["delete"] == 0
        warning = next(str(w) for w in plan.warnings if f"{prefix}old-alice" in str(w))
        assert "another reconciler instance" in warning and "remain" in warning
        assert "Settings.kubernetes.instance" in warning
    finally:
        runtime.close()


def test_a_delete_that_finds_nothing_is_already_gone_not_deleted(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix, extra_users=3)
    apply_all(plan_for(root, runtime), runtime)
    write_config(root, prefix, vision=False, extra_users=3)  # bob's pool and tenant go
    plan = plan_for(root, runtime)
    pool = next(a for a in plan.actions if a.op is Op.DELETE and str(a.kind) == "WarmPool")
    api.delete(f"/apis/apps/v1/namespaces/{prefix}bob/deployments/"
               f"{m.deployment_name(pool.id)}")  # someone was quicker
    result = execute(plan, runtime, wait_timeout=1)
    entry = next(e for e in result.entries if e.action_id == pool.id)
    assert entry.outcome is Outcome.UNCHANGED and "already gone" in entry.message
    assert result.counts["deleted"] == 1  # the tenant's namespace, really deleted
    assert result.ok


def test_writes_into_a_namespace_being_deleted_wait_and_the_next_pass_converges(
        tmp_path: Path, prefix: str, api: Api, settings: Settings,
        kubeconfig: Path) -> None:
    root = write_config(tmp_path / "repo", prefix, vision=False)
    namespace = f"{prefix}alice"
    runtime = KubernetesRuntime(settings, kubeconfig=kubeconfig)
    apply_all(plan_for(root, runtime), runtime)
    # someone deletes the namespace; a finalizer holds it (Terminating) as on a real cluster
    api.request("PATCH", f"/api/v1/namespaces/{namespace}",
                content_type="application/merge-patch+json",
                body={"metadata": {"finalizers": ["tests/hold"]}})
    api.delete(f"/api/v1/namespaces/{namespace}")
    plan = plan_for(root, runtime)
    assert {(str(a.op), str(a.kind)) for a in plan.actions} == {
        ("create", "Tenant"), ("create", "Quota"), ("create", "WarmPool")}
    # the plan says why it creates what is there: the namespace is going
    assert any(f"being deleted (Terminating): {namespace}." in str(w) for w in plan.warnings)
    result = execute(plan, runtime, wait_timeout=1)
    assert result.ok and result.counts["created"] == 0
    assert {e.outcome for e in result.entries} == {Outcome.DEFERRED}
    assert all(f"namespace {namespace} is being deleted" in e.message for e in result.entries)
    # a fresh runtime that never observed it: the server's refusal says the same
    fresh = KubernetesRuntime(settings, kubeconfig=kubeconfig)
    pool_action = next(a for a in plan.actions if str(a.kind) == "WarmPool")
    result = execute(dataclasses.replace(plan, actions=(pool_action,)), fresh, wait_timeout=1)
    assert [e.outcome for e in result.entries] == [Outcome.DEFERRED]
    fresh.close()
    # the namespace goes, as the namespace controller would do it: contents, then finalizers
    for kind in ("apis/apps/v1/namespaces/{}/deployments",
                 f"apis/{runtime.pdb_version}/namespaces/{{}}/poddisruptionbudgets",
                 "api/v1/namespaces/{}/resourcequotas"):
        path = "/" + kind.format(namespace)
        for item in api.list(path).items:
            api.delete(f"{path}/{item['metadata']['name']}")
    ns = api.get(f"/api/v1/namespaces/{namespace}")
    ns["spec"]["finalizers"] = []
    api.request("PUT", f"/api/v1/namespaces/{namespace}/finalize", body=ns)
    api.request("PATCH", f"/api/v1/namespaces/{namespace}",
                content_type="application/merge-patch+json",
                body={"metadata": {"finalizers": None}})
    assert api.get_or_none(f"/api/v1/namespaces/{namespace}") is None
    result = execute(plan_for(root, runtime), runtime, wait_timeout=1)
    assert result.ok and result.counts["created"] == 3, result.to_json()
    assert plan_for(root, runtime).empty
    runtime.close()
