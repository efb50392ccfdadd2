"""deploy/base as it is applied, and JSON-Schema checks against an API server's OpenAPI.

The kustomization uses `resources:` only (test_deploy_manifests checks that), so the
objects `kubectl apply -k deploy/base` creates are exactly the documents of the listed
files, in that order.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "base"

# kind -> (API path prefix, resource, namespaced), for the kinds deploy/ uses
KINDS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
}


def kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((BASE / "kustomization.yaml").read_text()))


def manifests() -> list[dict[str, Any]]:
    """Every object of deploy/base, in the kustomization's order."""
    out: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        out += [doc for doc in yaml.safe_load_all((BASE / name).read_text()) if doc]
    return out


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def object_path(doc: dict[str, Any]) -> str:
    prefix, resource, namespaced = KINDS[doc["kind"]]
    meta = doc["metadata"]
    where = f"/namespaces/{meta['namespace']}" if namespaced else ""
    return f"{prefix}{where}/{resource}/{meta['name']}"


def strict_openapi_schemas(openapi: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> a JSON Schema from an API server's /openapi/v2, made strict as
    kubernetes-validate's are: objects with properties allow no others."""
    definitions = copy.deepcopy(openapi["definitions"])
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
        "anyOf": [{"type": "string"}, {"type": "integer"}]}
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
        "anyOf": [{"type": "string"}, {"type": "number"}]}

    def strict(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(definitions)
    schemas = {}
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group, version = gvk["group"], gvk["version"]
            api_version = f"{group}/{version}" if group else version
            schemas[(api_version, gvk["kind"])] = {
                "$ref": f"#/definitions/{name}", "definitions": definitions}
    return schemas
