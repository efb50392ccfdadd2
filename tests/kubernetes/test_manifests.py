"""Manifests (pure) checked against the official schemas, and `reconciler render`.

kubernetes-validate ships schemas from 1.25 on; Namespace, ResourceQuota
and apps/v1 Deployment have not changed in the fields used here since 1.20,
the envtest server's version (which accepts them too: see the runtime tests).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import kubernetes_validate
import pytest
import yaml
from kubekit import desired_of, reconciler, write_config

from reconciler.config.model import KubernetesSettings
from reconciler.desired import scheduling_json
from reconciler.runtimes.kubernetes import drift, readback
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.states import Quota, Tenant, WarmPool, pool_id

SCHEMA_VERSION = "1.25.0"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SETTINGS = KubernetesSettings(
    namespace_prefix="acct-", gpu_node_selector={"accelerator": "nvidia"},
    gpu_tolerations=({"key": m.GPU, "operator": "Exists", "effect": "NoSchedule"},))
GPU_SCHEDULING = scheduling_json(SETTINGS)


def make_pool(caller: str = "alice", owner: str = "acme", name: str = "sentiment",
              **changes: object) -> WarmPool:
    commit = "0123456789abcdef" * 2 + "01234567"
    values: dict[str, object] = dict(
        id=pool_id(caller, owner, name, commit), caller=caller, owner=owner, name=name,
        commit=commit, version="1.0.0", replicas=2, processor="cpu", cpu="0.5",
        memory="512Mi", gpu=0, image="registry.example/img:1", entrypoint="mod:apply",
        model_path="data://acme/m/model.json", model_digest="sha256:" + "ab" * 32,
        sources=("alice-sentiment",), reason="reservation alice-sentiment")
    values.update(changes)
    return WarmPool(**values)  # type: ignore[arg-type]


def validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)


def test_every_kind_is_valid_against_the_schemas() -> None:
    gpu_pool = make_pool(name="vision", processor="gpu", gpu=2, scheduling=GPU_SCHEDULING)
    with_data = dataclasses.replace(SETTINGS, data_volume=MappingProxyType(
        {"persistentVolumeClaim": MappingProxyType({"claimName": "models"})}))
    for obj in (m.namespace_manifest("alice", SETTINGS, Tenant("alice")),
                m.namespace_manifest("acme", SETTINGS),
                m.quota_manifest(Quota("alice", 5, 2, "lim"), SETTINGS),
                m.deployment_manifest(make_pool(), SETTINGS),
                m.deployment_manifest(make_pool(), with_data),
                m.deployment_manifest(gpu_pool, SETTINGS, in_place=True),
                m.pdb_manifest(make_pool(), SETTINGS)):
        validate(obj)
        assert obj["metadata"]["labels"][m.INSTANCE_LABEL] == m.instance_label(SETTINGS)
    rolling = m.deployment_manifest(gpu_pool, SETTINGS, in_place=True)["spec"]["strategy"]
    assert rolling["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}  # no room to surge
    spec = m.deployment_manifest(gpu_pool, SETTINGS)["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"][m.GPU] == "2"
    assert spec["nodeSelector"] == {"accelerator": "nvidia"}
    assert spec["tolerations"] == [dict(SETTINGS.gpu_tolerations[0])]  # covers the default


def test_the_engine_container_runs_the_worker_with_its_settings_and_the_data_volume() -> None:
    pool = make_pool()
    container = m.deployment_manifest(pool, SETTINGS)["spec"]["template"]["spec"][
        "containers"][0]
    assert container["command"] == ["reconciler", "worker"] and "args" not in container
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "RECONCILER_ENTRYPOINT": "mod:apply", "RECONCILER_MODEL_PATH": pool.model_path,
        "RECONCILER_MODEL_DIGEST": pool.model_digest, "RECONCILER_POOL_ID": pool.id,
        "RECONCILER_LISTEN": "0.0.0.0:8080", "RECONCILER_DATA_ROOT": "/data"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    # the default warmupTimeout (120 s): restarted unless warm within 24 probes 5 s apart
    assert container["startupProbe"] == {"httpGet": {"path": "/healthz", "port": 8080},
                                         "periodSeconds": 5, "failureThreshold": 24}
    quick = m.deployment_manifest(dataclasses.replace(pool, warmup_timeout=2.5), SETTINGS)
    assert quick["spec"]["template"]["spec"]["containers"][0]["startupProbe"][
        "failureThreshold"] == 3  # every second, rounded up
    assert "volumeMounts" not in container  # no dataVolume: the image carries the data
    with_data = dataclasses.replace(SETTINGS, data_volume=MappingProxyType(
        {"nfs": MappingProxyType({"server": "nfs.example", "path": "/models"})}))
    spec = m.deployment_manifest(pool, with_data)["spec"]["template"]["spec"]
    assert spec["volumes"] == [{"name": "data", "nfs": {"server": "nfs.example",
                                                        "path": "/models"}}]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True}]
    pdb = m.pdb_manifest(pool, SETTINGS, "policy/v1beta1")
    assert pdb["apiVersion"] == "policy/v1beta1" and pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"] == m.deployment_manifest(pool, SETTINGS)["spec"]["selector"]


def test_scheduling_comes_from_the_pool_not_from_the_runtime_settings() -> None:
    assert GPU_SCHEDULING == ('{"nodeSelector":{"accelerator":"nvidia"},"tolerations":'
                              '[{"effect":"NoSchedule","key":"nvidia.com/gpu","operator":"Exists"}]}')
    assert scheduling_json(KubernetesSettings()) == ""
    other = make_pool(name="vision", processor="gpu", gpu=1,
                      scheduling='{"tolerations":[{"key":"dedicated","operator":"Exists"}]}')
    spec = m.deployment_manifest(other, SETTINGS)["spec"]["template"]["spec"]
    assert "nodeSelector" not in spec
    # a GPU pool always tolerates the taint GPU nodes carry, whatever the settings say
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}, m.GPU_TOLERATION]
    bare = make_pool(name="vision", processor="gpu", gpu=1, scheduling="")
    spec = m.deployment_manifest(bare, SETTINGS)["spec"]["template"]["spec"]
    assert spec["tolerations"] == [m.GPU_TOLERATION]
    assert readback.pool_from(m.deployment_manifest(bare, SETTINGS)) == bare
    cpu = m.deployment_manifest(make_pool(), SETTINGS)["spec"]["template"]["spec"]
    assert "nodeSelector" not in cpu and "tolerations" not in cpu


def test_instances_default_to_the_prefix_and_always_make_a_valid_label() -> None:
    assert m.instance_name(KubernetesSettings(namespace_prefix="team-")) == "team-"
    label = m.instance_label(KubernetesSettings(namespace_prefix="team-"))
    assert label.startswith("team-") and label != "team" and re.match(
        r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", label)
    assert m.instance_label(KubernetesSettings(namespace_prefix="team-", instance="prod")) == \
        "prod"
    assert m.selector(KubernetesSettings(instance="prod")) == \
        f"{m.SELECTOR},{m.INSTANCE_LABEL}=prod"


def test_names_and_labels_stay_valid_for_the_longest_names() -> None:
    long = "a" + "-b" * 31  # 63 characters, the longest config name
    pool = make_pool(caller=long, owner=long.replace("a", "o", 1), name=long.replace("a", "n", 1))
    twin = make_pool(caller=long, owner=long.replace("a", "p", 1), name=long.replace("a", "n", 1))
    deployment = m.deployment_manifest(pool, SETTINGS)
    validate(deployment)
    validate(m.namespace_manifest(long, SETTINGS, Tenant(long)))
    meta = deployment["metadata"]
    assert DNS_LABEL.match(meta["name"]) and len(meta["name"]) <= 63
    assert DNS_LABEL.match(meta["namespace"]) and len(meta["namespace"]) <= 63
    assert meta["name"] != m.deployment_name(twin.id)  # same name, other owner
    assert meta["annotations"][m.POOL_ANNOTATION] == pool.id
    for value in meta["labels"].values():
        assert len(value) <= 63 and re.match(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
                                             value)
    assert m.label_value(pool.id) != m.label_value(twin.id)


@pytest.mark.parametrize("pool", [make_pool(), make_pool(processor="gpu", gpu=1, version=None,
                                                         visibility="unpublished",
                                                         scheduling=GPU_SCHEDULING)])
def test_a_deployment_reads_back_as_the_pool_it_was_made_from(pool: WarmPool) -> None:
    assert readback.pool_from(m.deployment_manifest(pool, SETTINGS)) == pool


def test_hand_edits_are_read_back_and_rewritten_quantities_are_not() -> None:
    deployment = m.deployment_manifest(make_pool(), SETTINGS)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["cpu"] = "500m"  # how the API server writes "0.5"
    assert readback.pool_from(deployment) == make_pool()
    container["resources"]["limits"]["memory"] = "1Gi"
    container["image"] = "someone/else"
    deployment["spec"]["replicas"] = 9
    assert readback.pool_from(deployment) == make_pool(memory="1Gi", image="someone/else",
                                                       replicas=9)


def test_hand_edited_scheduling_reads_back_as_drift() -> None:
    pool = make_pool(processor="gpu", gpu=1, scheduling=GPU_SCHEDULING)
    deployment = m.deployment_manifest(pool, SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    pod["tolerations"] = [{"operator": "Exists"}]
    assert readback.pool_from(deployment) == make_pool(
        processor="gpu", gpu=1,
        scheduling='{"nodeSelector":{"accelerator":"nvidia"},"tolerations":[{"operator":"Exists"}]}')
    del pod["nodeSelector"], pod["tolerations"]
    assert readback.pool_from(deployment) == make_pool(processor="gpu", gpu=1, scheduling="")


def test_tenants_and_quotas_read_back() -> None:
    org = Tenant("acme", "organization")
    assert readback.tenant_from(m.namespace_manifest("acme", SETTINGS, org)) == org
    assert readback.tenant_from(m.namespace_manifest("acme", SETTINGS)) is None
    quota = Quota("alice", 5, None, "alice-capacity")
    manifest = m.quota_manifest(quota, SETTINGS)
    assert manifest["spec"]["hard"] == {"pods": "5"}
    assert readback.quota_from(manifest) == quota
    manifest["spec"]["hard"] = {"pods": "1k", f"requests.{m.GPU}": "3"}  # edited by hand
    assert readback.quota_from(manifest) == Quota("alice", 1000, 3, "alice-capacity")


def test_drift_is_any_field_the_reconciler_sets_and_not_what_others_add() -> None:
    want = m.deployment_manifest(make_pool(), SETTINGS)
    live = copy.deepcopy(want)
    live["status"] = {"replicas": 2}
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "SIDECAR_HINT", "value": "x"})  # someone else's key
    container["readinessProbe"].update(timeoutSeconds=1, failureThreshold=3)  # defaults
    container["resources"]["requests"]["cpu"] = "500m"  # the server's spelling of 0.5
    assert list(drift.differences(want, live)) == []
    live["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1
    container["command"] = ["sleep", "infinity"]
    container["env"][0]["value"] = "other:apply"
    found = [drift.dotted(p) for p in drift.differences(want, live)]
    assert found == ["spec.strategy.rollingUpdate.maxUnavailable",
                     "spec.template.spec.containers[engine].command",
                     "spec.template.spec.containers[engine].env[RECONCILER_ENTRYPOINT].value"]
    text = drift.describe("Deployment", want, live)
    assert 'command is ["sleep", "infinity"], reconciler sets ["reconciler", "worker"]' in text


def test_other_writers_of_our_fields_are_found_in_managed_fields() -> None:
    want = m.deployment_manifest(make_pool(), SETTINGS)
    live = copy.deepcopy(want)
    live["metadata"]["managedFields"] = [
        {"manager": "reconciler", "operation": "Apply", "fieldsV1": {"f:spec": {
            "f:replicas": {}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {
            "f:status": {"f:replicas": {}}, "f:metadata": {"f:annotations": {
                "f:deployment.kubernetes.io/revision": {}}}}},
        {"manager": "hpa", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {
            "f:template": {"f:spec": {"f:containers": {'k:{"name":"engine"}': {
                "f:image": {}, "f:tty": {}}}}}}}},
    ]
    assert sorted(drift.shared_writers(live, want)) == [
        ("hpa", "spec.replicas"),
        ("kubectl-edit", "spec.template.spec.containers[engine].image")]


@pytest.mark.slow
def test_render_writes_valid_deterministic_manifests(tmp_path: Path) -> None:
    root = write_config(tmp_path / "repo", "acct-")
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "mine.yaml").write_text("kept: true\n")
    # a sibling render inside DIR (another environment): never touched by this one
    staging = write_config(tmp_path / "staging-repo", "stg-")
    assert reconciler("render", str(staging), "--out", str(out / "staging")).returncode == 0
    theirs = {p: p.read_bytes() for p in (out / "staging").rglob("*") if p.is_file()}
    result = reconciler("render", str(root), "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml")
                   if not p.relative_to(out).as_posix().startswith("staging/"))
    desired, _ = desired_of(root)
    pools = [f"acct-{p.caller}/{kind}-{m.deployment_name(p.id)}.yaml"
             for p in desired.pools for kind in ("deployment", "poddisruptionbudget")]
    assert files == sorted(["acct-alice/00-namespace.yaml", "acct-alice/resourcequota.yaml",
                            "acct-bob/00-namespace.yaml", "notes/mine.yaml", *pools])
    for folder in ("acct-alice", "acct-bob"):  # kubectl apply -R: the namespace first
        assert sorted(p.name for p in (out / folder).iterdir())[0] == "00-namespace.yaml"
    texts = {}
    for name in (f for f in files if not f.startswith("notes/")):
        text = (out / name).read_text()
        assert text.startswith("# Generated by `reconciler render`")
        validate(yaml.safe_load(text))
        texts[name] = text
    assert reconciler("render", str(root), "--out", str(out)).returncode == 0
    assert {n: (out / n).read_text() for n in texts} == texts

    write_config(root, "acct-", vision=False)  # bob's pool and tenant go: their files too
    assert reconciler("render", str(root), "--out", str(out)).returncode == 0
    assert not (out / "acct-bob").exists()
    assert (out / "notes" / "mine.yaml").read_text() == "kept: true\n"
    assert {p: p.read_bytes() for p in (out / "staging").rglob("*") if p.is_file()} == theirs
    listed = (out / ".reconciler-render").read_text().splitlines()
    assert "acct-alice/00-namespace.yaml" in listed and not any("bob" in x for x in listed)


@pytest.mark.slow
def test_render_of_an_invalid_config_exits_1_with_diagnostics(tmp_path: Path) -> None:
    root = write_config(tmp_path / "repo", "acct-")
    (root / "bad.yaml").write_text("apiVersion: reconciler/v1\nkind: Account\nmetadata:\n"
                                   "  name: Bad_Name\nspec:\n  type: user\n")
    result = reconciler("render", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "bad.yaml:4" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_render_and_the_local_runtime_never_import_the_kubernetes_client(tmp_path: Path) -> None:
    root = write_config(tmp_path / "repo", "acct-")
    code = ("import sys\nfrom reconciler.cli import cli\n"
            f"cli.main(['render', {str(root)!r}, '--out', {str(tmp_path / 'out')!r}], "
            "standalone_mode=False)\n"
            "from reconciler.runtimes import open_runtime\n"
            f"open_runtime('local', state_dir={str(tmp_path / 'state')!r}).close()\n"
            "print('kubernetes' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(("extra", "error"), [
    ("    instance: prod\n    dataVolume: {nfs: {server: nfs.example, path: /models}}\n", None),
    ("    instance: Prod-\n", "spec.kubernetes.instance"),
    ("    dataVolume: {nfs: {server: a}, hostPath: {path: /m}}\n", "spec.kubernetes.dataVolume"),
    ("    dataVolume: {persistentVolumeClam: {claimName: m}}\n", "spec.kubernetes.dataVolume"),
    ("    dataVolume: {}\n", "spec.kubernetes.dataVolume"),
])
def test_settings_instance_and_data_volume(tmp_path: Path, extra: str, error: str | None) -> None:
    from reconciler.config.loader import check_config

    root = write_config(tmp_path / "repo", "acct-")
    settings = root / "settings.yaml"
    settings.write_text(settings.read_text().replace("  kubernetes:\n", "  kubernetes:\n" + extra))
    config, diagnostics = check_config(root)
    if error is None:
        assert config is not None, [str(d) for d in diagnostics]
        kubernetes = config.settings.kubernetes
        assert kubernetes.instance == "prod"
        assert dict(kubernetes.data_volume["nfs"]) == {"server": "nfs.example", "path": "/models"}
    else:
        assert config is None
        assert any(error in str(d) for d in diagnostics), [str(d) for d in diagnostics]
