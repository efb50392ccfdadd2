"""Hand edits of any field the reconciler sets show in the next plan and apply reverts them;
another writer of such a field is named in a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubekit import apply_all, plan_for, write_config

from reconciler.apply import execute
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes.client import APPLY_PATCH, MERGE_PATCH, Api
from reconciler.runtimes.kubernetes.runtime import KubernetesRuntime

pytestmark = pytest.mark.slow


def ops(plan) -> list[tuple[str, str, str]]:
    return [(str(a.op), str(a.kind), a.id) for a in plan.actions]


def test_quota_strategy_probe_command_and_pdb_edits_are_reverted(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix, vision=False)
    apply_all(plan_for(root, runtime), runtime)
    pool = runtime.observe().pools[0]
    name = m.deployment_name(pool.id)
    namespace = f"{prefix}alice"
    quota = f"/api/v1/namespaces/{namespace}/resourcequotas/{m.QUOTA_NAME}"
    deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    pdb = f"/apis/{runtime.pdb_version}/namespaces/{namespace}/poddisruptionbudgets/{name}"
    assert api.get(pdb)["spec"]["minAvailable"] == 2  # a PDB per pool

    # A CapacityLimit silently stops being enforced: today invisible, now an update.
    api.request("PATCH", quota, content_type=MERGE_PATCH,
                body={"spec": {"hard": {"pods": "500", f"requests.{m.GPU}": None}}})
    plan = plan_for(root, runtime)
    assert ops(plan) == [("update", "Quota", "alice")]
    assert [(c.path, c.before, c.after) for c in plan.actions[0].changes] == [
        ("max_engines", 500, 5), ("max_gpus", None, 2)]
    apply_all(plan, runtime)
    assert api.get(quota)["spec"]["hard"] == {"pods": "5", f"requests.{m.GPU}": "2"}

    # Strategy, probe, command and the PDB, edited by hand
    api.request("PATCH", deployment, content_type=MERGE_PATCH, body={"spec": {
        "strategy": {"rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}}})
    container = api.get(deployment)["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["path"] = "/"
    container["command"] = ["sleep", "infinity"]
    api.request("PATCH", deployment, content_type="application/strategic-merge-patch+json",
                body={"spec": {"template": {"spec": {"containers": [container]}}}})
    api.request("PATCH", pdb, content_type=MERGE_PATCH, body={"spec": {"minAvailable": 0}})
    plan = plan_for(root, runtime)
    assert ops(plan) == [("update", "WarmPool", pool.id)]
    (change,) = plan.actions[0].changes
    assert change.path == "drift"
    for words in ("spec.strategy.rollingUpdate.maxSurge is 3, reconciler sets 1",
                  'containers[engine].command is ["sleep", "infinity"], reconciler sets '
                  '["reconciler", "worker"] (and 1 more)',  # the probe, counted
                  "PodDisruptionBudget spec.minAvailable is 0, reconciler sets 2"):
        assert words in change.before
    result = execute(plan, runtime, wait_timeout=1)
    assert result.ok, result.to_json()
    spec = api.get(deployment)["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    engine = spec["template"]["spec"]["containers"][0]
    assert engine["command"] == ["reconciler", "worker"]
    assert engine["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert api.get(pdb)["spec"]["minAvailable"] == 2
    assert plan_for(root, runtime).empty

    # A PDB deleted by hand is made again
    api.delete(pdb)
    plan = plan_for(root, runtime)
    assert plan.actions[0].changes[0].before == "PodDisruptionBudget missing"
    apply_all(plan, runtime)
    assert api.get(pdb)["spec"]["minAvailable"] == 2


def test_another_writer_of_replicas_is_named_in_a_warning(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    root = write_config(tmp_path / "repo", prefix, vision=False)
    apply_all(plan_for(root, runtime), runtime)
    pool = runtime.observe().pools[0]
    name = m.deployment_name(pool.id)
    deployment = f"/apis/apps/v1/namespaces/{prefix}alice/deployments/{name}"
    # an autoscaler: its own field manager, applying replicas
    api.request("PATCH", deployment, content_type=APPLY_PATCH,
                query={"fieldManager": "autoscaler", "force": "true"},
                body={"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": name}, "spec": {"replicas": 2}})
    plan = plan_for(root, runtime)
    assert plan.empty  # same value: no drift, but two owners
    (warning,) = [str(w) for w in plan.warnings if "autoscaler" in str(w)]
    assert "field manager 'autoscaler' also writes Deployment spec.replicas" in warning
    assert f"{prefix}alice/{name}" in warning


def test_drift_outside_the_pod_template_needs_no_room_for_an_extra_replica(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    # alice runs 2 replicas with maxEngines 2: a rolling replacement has no room for a
    # third. A PDB or label edited by hand is written back without replacing any replica,
    # so the plan is not refused for it (the daemon would refuse every pass, and with it
    # every commit, until someone passed --allow-reduced-capacity).
    root = write_config(tmp_path / "repo", prefix, vision=False, max_engines=2)
    apply_all(plan_for(root, runtime), runtime)
    pool = runtime.observe().pools[0]
    name = m.deployment_name(pool.id)
    deployment = f"/apis/apps/v1/namespaces/{prefix}alice/deployments/{name}"
    pdb = f"/apis/{runtime.pdb_version}/namespaces/{prefix}alice/poddisruptionbudgets/{name}"
    api.request("PATCH", pdb, content_type=MERGE_PATCH, body={"spec": {"minAvailable": 0}})
    api.request("PATCH", deployment, content_type=MERGE_PATCH, body={
        "metadata": {"labels": {"reconciler.io/caller": "mallory"}},
        "spec": {"strategy": {"rollingUpdate": {"maxSurge": 3}}}})
    plan = plan_for(root, runtime)
    assert ops(plan) == [("update", "WarmPool", pool.id)]
    assert plan.applyable, [str(e) for e in plan.errors]
    assert not plan.actions[0].in_place
    generation = api.get(deployment)["metadata"]["generation"]
    result = execute(plan, runtime, wait_timeout=1)
    assert result.ok, result.to_json()
    assert api.get(pdb)["spec"]["minAvailable"] == 2
    live = api.get(deployment)
    assert live["metadata"]["labels"]["reconciler.io/caller"] == "alice"
    assert live["metadata"]["generation"] == generation + 1  # the strategy, not the template
    assert plan_for(root, runtime).empty

    # drift in the pod template does replace the replicas: that still needs the room, and
    # without it the repair is held back with a warning (the rest of a plan goes ahead)
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["sleep", "infinity"]
    api.request("PATCH", deployment, content_type="application/strategic-merge-patch+json",
                body={"spec": {"template": {"spec": {"containers": [container]}}}})
    held = plan_for(root, runtime)
    assert held.applyable and held.empty
    assert any("maxEngines 2" in str(w) and "the drift is not reverted" in str(w)
               for w in held.warnings)


def test_what_another_manager_adds_to_the_pod_template_is_named_in_a_warning(
        tmp_path: Path, prefix: str, api: Api, runtime: KubernetesRuntime) -> None:
    # Someone who may edit Deployments in an account's namespace adds a container, the
    # host network and privilege to the engine. Server-side apply keeps fields another
    # manager owns, so no apply removes them: the plan must say so, every time.
    root = write_config(tmp_path / "repo", prefix, vision=False)
    apply_all(plan_for(root, runtime), runtime)
    pool = runtime.observe().pools[0]
    name = m.deployment_name(pool.id)
    deployment = f"/apis/apps/v1/namespaces/{prefix}alice/deployments/{name}"
    assert not [w for w in plan_for(root, runtime).warnings if "added" in str(w)]
    api.request("PATCH", deployment, content_type="application/strategic-merge-patch+json",
                query={"fieldManager": "intruder"}, body={"spec": {"template": {"spec": {
                    "hostNetwork": True,
                    "containers": [
                        {"name": "engine", "securityContext": {"privileged": True}},
                        {"name": "miner", "image": "registry.example/miner"}]}}}})
    plan = plan_for(root, runtime)
    added = sorted(str(w) for w in plan.warnings if "'intruder' added" in str(w))
    assert [w.split(" to ")[0] for w in added] == [
        # the API server's defaults that follow from hostNetwork are the intruder's too
        "field manager 'intruder' added Deployment spec.template.spec.containers[engine]"
        ".ports[8080,TCP].hostPort",
        "field manager 'intruder' added Deployment spec.template.spec.containers[engine]"
        ".securityContext",
        "field manager 'intruder' added Deployment spec.template.spec.containers[miner]",
        "field manager 'intruder' added Deployment spec.template.spec.hostNetwork"]
    assert all(f"{prefix}alice/{name}" in w and "cannot remove" in w for w in added)
