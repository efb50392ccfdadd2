"""Desired objects as Kubernetes manifests, and back. Pure: no client, no I/O.

Tenant -> Namespace `<namespacePrefix><account>`; Quota -> ResourceQuota
`reconciler-quota` in that namespace; WarmPool -> Deployment in the caller's
namespace. Every object carries the managed-by label (observe lists by it and
never touches anything without it) and a `reconciler.io/spec` annotation with
the whole value it was made from, so observe() gives back exactly what was
applied and a second plan is empty. Fields a person could change by hand
(replicas, image, resources, env, the digest annotation) are read back from
the object itself, so such drift shows up in the next plan.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from reconciler.config.model import KubernetesSettings
from reconciler.quantities import parse
from reconciler.states import DesiredState, Quota, Tenant, WarmPool

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "reconciler"
SELECTOR = f"{MANAGED_BY}={MANAGER}"
ACCOUNT_LABEL = "reconciler.io/account"
CALLER_LABEL = "reconciler.io/caller"
ALGORITHM_LABEL = "reconciler.io/algorithm"
POOL_LABEL = "reconciler.io/pool-id"
POOL_ANNOTATION = "reconciler.io/pool"
SPEC_ANNOTATION = "reconciler.io/spec"
DIGEST_ANNOTATION = "reconciler.io/model-digest"
QUOTA_NAME = "reconciler-quota"
GPU = "nvidia.com/gpu"
CONTAINER = "engine"
PORT = 8080
MAX_NAME = 63

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def short_hash(text: str, size: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def fit(text: str, key: str, limit: int = MAX_NAME) -> str:
    """`text` if it fits in `limit`, else a truncation ending in a hash of `key`."""
    if len(text) <= limit:
        return text
    suffix = short_hash(key)
    head = text[:limit - len(suffix) - 1].rstrip("-.")
    return f"{head}-{suffix}"


def label_value(text: str) -> str:
    """A valid label value for `text`: itself when valid, else a safe form plus a hash."""
    if len(text) <= MAX_NAME and _LABEL_VALUE.match(text):
        return text
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", text).strip("-._")[:MAX_NAME - 9].rstrip("-._")
    return f"{safe}-{short_hash(text)}" if safe else short_hash(text)


def namespace_name(account: str, settings: KubernetesSettings) -> str:
    """`<namespacePrefix><account>`, shortened with a hash past 63 characters."""
    return fit(f"{settings.namespace_prefix}{account}", account)


def deployment_name(pool_id: str) -> str:
    """`<name>-<commit[:10]>-<hash of the pool id>`: readable, at most 63 characters, and
    distinct for two owners' algorithms of the same name reserved by one caller. Made from
    the id alone (CALLER.OWNER.NAME.COMMIT12; names hold no dots), so wait_ready needs no
    more than the id."""
    _, _, name, commit = pool_id.split(".", 3)
    tail = f"-{commit[:10]}-{short_hash(pool_id, 6)}"
    return f"{name[:MAX_NAME - len(tail)].rstrip('-')}{tail}"


def pool_namespace(pool_id: str, settings: KubernetesSettings) -> str:
    return namespace_name(pool_id.split(".", 1)[0], settings)


def _spec_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _meta(name: str, labels: dict[str, str], spec: Mapping[str, Any] | None,
          namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {MANAGED_BY: MANAGER, **labels}
    if spec is not None:
        meta["annotations"] = {SPEC_ANNOTATION: _spec_json(spec)}
    return meta


# --- tenants and quotas ---------------------------------------------------------------------

def namespace_manifest(account: str, settings: KubernetesSettings,
                       tenant: Tenant | None = None) -> dict[str, Any]:
    """The account's namespace; it carries the Tenant's spec only when it is the tenant's
    (a namespace made only to hold a quota has none, so observe reports no Tenant)."""
    spec = {"account": tenant.account, "type": tenant.type} if tenant else None
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(namespace_name(account, settings),
                              {ACCOUNT_LABEL: label_value(account)}, spec)}


def quota_manifest(quota: Quota, settings: KubernetesSettings) -> dict[str, Any]:
    """maxEngines -> `pods`, maxGpus -> `requests.nvidia.com/gpu` (one pod is one engine)."""
    hard = {"pods": str(quota.max_engines)}
    if quota.max_gpus is not None:
        hard[f"requests.{GPU}"] = str(quota.max_gpus)
    spec = {"account": quota.account, "max_engines": quota.max_engines,
            "max_gpus": quota.max_gpus, "source": quota.source}
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": _meta(QUOTA_NAME, {ACCOUNT_LABEL: label_value(quota.account)}, spec,
                              namespace_name(quota.account, settings)),
            "spec": {"hard": hard}}


def tenant_from(obj: Mapping[str, Any]) -> Tenant | None:
    data = _spec_of(obj)
    return None if data is None else Tenant(data["account"], data.get("type", "user"))


def quota_from(obj: Mapping[str, Any]) -> Quota | None:
    data = _spec_of(obj)
    if data is None:
        return None
    return Quota(data["account"], data["max_engines"], data.get("max_gpus"),
                 data.get("source", ""))


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(SPEC_ANNOTATION)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# --- warm pools -----------------------------------------------------------------------------

def pool_labels(pool: WarmPool) -> dict[str, str]:
    return {POOL_LABEL: label_value(pool.id), CALLER_LABEL: label_value(pool.caller),
            ALGORITHM_LABEL: label_value(f"{pool.owner}.{pool.name}")}


def pool_env(pool: WarmPool) -> list[dict[str, str]]:
    return [{"name": "RECONCILER_ENTRYPOINT", "value": pool.entrypoint},
            {"name": "RECONCILER_MODEL_PATH", "value": pool.model_path},
            {"name": "RECONCILER_MODEL_DIGEST", "value": pool.model_digest},
            {"name": "RECONCILER_POOL_ID", "value": pool.id}]


def deployment_manifest(pool: WarmPool, settings: KubernetesSettings, *,
                        in_place: bool = False) -> dict[str, Any]:
    """The pool's Deployment. A rolling update surges one pod and never drops below the
    reserved count (maxUnavailable 0); `in_place` (the surge does not fit) swaps that."""
    labels = pool_labels(pool)
    metadata = _meta(deployment_name(pool.id), labels, pool.to_json(),
                     namespace_name(pool.caller, settings))
    metadata["annotations"][POOL_ANNOTATION] = pool.id
    resources: dict[str, str] = {"cpu": pool.cpu, "memory": pool.memory}
    if pool.gpu > 0:
        resources[GPU] = str(pool.gpu)
    container = {
        "name": CONTAINER, "image": pool.image, "env": pool_env(pool),
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                           "periodSeconds": 5},
    }
    pod_spec: dict[str, Any] = {"containers": [container], **scheduling_of(pool)}
    surge, unavailable = (0, 1) if in_place else (1, 0)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": {POOL_LABEL: labels[POOL_LABEL]}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {
                "metadata": {"labels": {MANAGED_BY: MANAGER, **labels},
                             "annotations": {DIGEST_ANNOTATION: pool.model_digest,
                                             POOL_ANNOTATION: pool.id}},
                "spec": pod_spec,
            },
        },
    }


def scheduling_of(pool: WarmPool) -> dict[str, Any]:
    """The pod spec's nodeSelector / tolerations, from the pool's own `scheduling` (the
    config's gpu settings when it was compiled), not from this runtime's Settings."""
    if not pool.scheduling:
        return {}
    try:
        data = json.loads(pool.scheduling)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: data[key] for key in ("nodeSelector", "tolerations") if data.get(key)}


def _live_scheduling(pool: WarmPool, pod_spec: Mapping[str, Any]) -> str:
    """The pool's `scheduling` while the pod spec still says the same; else the canonical
    JSON of what the pod spec says now (someone edited it: drift, an `update`)."""
    live = {key: pod_spec[key] for key in ("nodeSelector", "tolerations") if pod_spec.get(key)}
    if live == scheduling_of(pool):
        return pool.scheduling
    return _spec_json(live) if live else ""


def pool_from(obj: Mapping[str, Any]) -> WarmPool | None:
    """The WarmPool a Deployment was applied from, with hand-editable fields read from the
    object (replicas, image, resources, env, digest) so drift shows in the next plan."""
    data = _spec_of(obj)
    if data is None:
        return None
    try:
        pool = WarmPool.from_json(data)
    except TypeError:
        return None
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    containers = pod_spec.get("containers") or [{}]
    container = next((c for c in containers if c.get("name") == CONTAINER), containers[0])
    env = {e.get("name"): e.get("value") for e in container.get("env") or ()}
    limits = (container.get("resources") or {}).get("limits") or {}
    digest = ((template.get("metadata") or {}).get("annotations") or {}).get(DIGEST_ANNOTATION)
    values = {
        "replicas": spec.get("replicas", pool.replicas),
        "image": container.get("image", pool.image),
        "cpu": _same_quantity(pool.cpu, limits.get("cpu")),
        "memory": _same_quantity(pool.memory, limits.get("memory")),
        "gpu": int(limits.get(GPU, 0)),
        "entrypoint": env.get("RECONCILER_ENTRYPOINT", pool.entrypoint),
        "model_path": env.get("RECONCILER_MODEL_PATH", pool.model_path),
        "model_digest": digest or pool.model_digest,
        "scheduling": _live_scheduling(pool, pod_spec),
    }
    return WarmPool.from_json({**pool.to_json(), **values})


def _same_quantity(applied: str, live: str | None) -> str:
    """The applied spelling while the live value means the same amount (the API server
    may rewrite "0.5" as "500m"); the live one when someone changed it."""
    if live is None:
        return applied
    try:
        return applied if parse(applied) == parse(live) else live
    except ValueError:
        return live


# --- everything, for `reconciler render` ----------------------------------------------------

def manifests(desired: DesiredState, settings: KubernetesSettings) -> list[dict[str, Any]]:
    """Every object of a desired state, namespaces first. A quota's namespace is made even
    when the account calls nothing, as apply does."""
    tenants = {t.account: t for t in desired.tenants}
    accounts = sorted(tenants.keys() | {q.account for q in desired.quotas})
    objects = [namespace_manifest(a, settings, tenants.get(a)) for a in accounts]
    objects += [quota_manifest(q, settings) for q in desired.quotas]
    objects += [deployment_manifest(p, settings) for p in desired.pools]
    return objects
