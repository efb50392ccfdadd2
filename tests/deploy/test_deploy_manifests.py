"""deploy/base: valid for current Kubernetes (kubernetes-validate, strict), complete, and
the restricted, least-privilege deployment the README describes. The check against the
1.20 API server of the tests (its own OpenAPI, strict) is in test_deploy_rbac.py."""

from __future__ import annotations

import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml
from deploykit import BASE, by_kind, kustomization, manifests

import reconciler

# The newest schemas kubernetes-validate ships, and the oldest (1.25); the 1.20 server of
# the tests is checked by its own schema in test_deploy_rbac.py.
VERSIONS = (kubernetes_validate.utils.latest_version(), "1.25.0")


def test_the_kustomization_lists_every_file_and_uses_resources_only() -> None:
    data = kustomization()
    assert set(data) == {"apiVersion", "kind", "resources"}
    listed = set(data["resources"])
    assert listed == {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_passes_kubernetes_validate_strict(version: str) -> None:
    for doc in manifests():
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubectl_kustomize_renders_exactly_these_objects() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the rendering is checked without it above)")
    done = subprocess.run([kubectl, "kustomize", str(BASE)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    rendered = sorted(yaml.safe_load_all(done.stdout), key=key)
    assert rendered == sorted(manifests(), key=key)


def test_the_deployment_is_restricted_and_finds_its_lease_namespace() -> None:
    [deployment] = by_kind("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["image"].endswith(f":{reconciler.__version__}")
    assert container["args"][0] == "daemon" and "--runtime=kubernetes" in container["args"]
    assert not any(a.startswith("--lease-namespace") for a in container["args"])
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values()
               if "secretKeyRef" in e.get("valueFrom", {})}
    assert secrets == {"reconciler-webhook", "reconciler-git", "reconciler-ui"}
    assert all(e["valueFrom"]["secretKeyRef"]["optional"] is True for e in env.values()
               if "secretKeyRef" in e.get("valueFrom", {})), "the README says: all optional"
    assert {"RECONCILER_WEBHOOK_SECRET", "RECONCILER_GIT_TOKEN", "RECONCILER_UI_TOKEN",
            "RECONCILER_GIT_SSH_KEY"} <= set(env)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path in ("/var/lib/reconciler", "/home/reconciler", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path
    assert "--state=/var/lib/reconciler" in container["args"]
    assert env["HOME"]["value"] == "/home/reconciler"


def test_the_service_exposes_the_daemons_port() -> None:
    [service] = by_kind("Service")
    [deployment] = by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == "http"


def test_the_lease_is_granted_in_the_daemons_namespace_only() -> None:
    [role] = by_kind("Role")
    [deployment] = by_kind("Deployment")
    assert role["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert all(rule["resources"] == ["leases"] for rule in role["rules"])
    for cluster_role in by_kind("ClusterRole"):
        assert not any("leases" in rule["resources"] for rule in cluster_role["rules"])


def test_every_binding_names_the_deployments_service_account() -> None:
    [deployment] = by_kind("Deployment")
    account = (deployment["spec"]["template"]["spec"]["serviceAccountName"],
               deployment["metadata"]["namespace"])
    for binding in by_kind("ClusterRoleBinding") + by_kind("RoleBinding"):
        assert [(s["kind"], s["name"], s["namespace"]) for s in binding["subjects"]] == [
            ("ServiceAccount", *account)]


def test_the_daemon_takes_its_lease_namespace_from_the_option_else_the_pod(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.cli.daemon import lease_namespace_of

    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert lease_namespace_of(None) == "reconciler-system"
    monkeypatch.setenv("POD_NAMESPACE", "platform-ops")
    assert lease_namespace_of(None) == "platform-ops"
    assert lease_namespace_of("explicit") == "explicit"
