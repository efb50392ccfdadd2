"""Desired objects as Kubernetes manifests. Pure: no client, no I/O.

Tenant -> Namespace `<namespacePrefix><account>`; Quota -> ResourceQuota
`reconciler-quota` in that namespace; WarmPool -> Deployment in the caller's
namespace plus a PodDisruptionBudget of the same name (minAvailable =
replicas). Every object carries the managed-by and instance labels (observe
lists by both and never touches anything without them) and a
`reconciler.io/spec` annotation with the whole value it was made from, so
observe() gives back exactly what was applied and a second plan is empty
(readback.py reads objects back; drift.py compares what was changed by hand).

The engine container runs `reconciler worker` (SPEC.md section 4) with its
settings in RECONCILER_* variables; Settings.kubernetes.dataVolume, when set,
is mounted read-only at DATA_ROOT.

Objects the config places elsewhere now (namespacePrefix changed under an
explicit instance) keep their namespace in their id: `ID@NAMESPACE`
(`located` splits it), so the plan sees a new object to create and an old
one to delete, and the delete of an old pool is a version move.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from reconciler.config.model import KubernetesSettings
from reconciler.states import ELSEWHERE, DesiredState, Quota, Tenant, WarmPool

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "reconciler"
SELECTOR = f"{MANAGED_BY}={MANAGER}"
INSTANCE_LABEL = "reconciler.io/instance"
ACCOUNT_LABEL = "reconciler.io/account"
CALLER_LABEL = "reconciler.io/caller"
ALGORITHM_LABEL = "reconciler.io/algorithm"
POOL_LABEL = "reconciler.io/pool-id"
POOL_ANNOTATION = "reconciler.io/pool"
SPEC_ANNOTATION = "reconciler.io/spec"
DIGEST_ANNOTATION = "reconciler.io/model-digest"
QUOTA_NAME = "reconciler-quota"
GPU = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
CONTAINER = "engine"
COMMAND = ["reconciler", "worker"]
PORT = 8080
DATA_ROOT = "/data"
DATA_VOLUME = "data"
MAX_NAME = 63
ANY_PREFIX = "*"  # a namespacePrefix no config has: reading (status) without the config's
PDB_VERSIONS = ("policy/v1", "policy/v1beta1")  # newest first

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


@functools.lru_cache(maxsize=65536)
def label_value(text: str) -> str:
    """A valid label value for `text`: itself when valid, else a safe form plus a hash."""
    if len(text) <= MAX_NAME and _LABEL_VALUE.match(text):
        return text
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", text).strip("-._")[:MAX_NAME - 9].rstrip("-._")
    return f"{safe}-{short_hash(text)}" if safe else short_hash(text)


def instance_name(settings: KubernetesSettings) -> str:
    """Settings.kubernetes.instance, else the namespacePrefix (as written)."""
    return settings.instance if settings.instance is not None else settings.namespace_prefix


def instance_label(settings: KubernetesSettings) -> str:
    """The `reconciler.io/instance` value: the instance itself when it is a valid label
    value, else a safe form with a hash (the default prefix `acct-` ends in a dash)."""
    return label_value(instance_name(settings))


def selector(settings: KubernetesSettings) -> str:
    """What observe lists by: managed by the reconciler AND of this instance."""
    return f"{SELECTOR},{INSTANCE_LABEL}={instance_label(settings)}"


def namespace_name(account: str, settings: KubernetesSettings) -> str:
    """`<namespacePrefix><account>`, shortened with a hash past 63 characters."""
    return fit(f"{settings.namespace_prefix}{account}", account)


def located(ident: str) -> tuple[str, str | None]:
    """(the plain id, its namespace) of `ID@NAMESPACE`; (id, None) for a plain id."""
    plain, _, namespace = ident.partition(ELSEWHERE)
    return plain, (namespace or None)


def elsewhere(ident: str, namespace: str) -> str:
    return f"{ident}{ELSEWHERE}{namespace}"


def deployment_name(pool_id: str) -> str:
    """`<name>-<commit[:10]>-<hash of the pool id>`: readable, at most 63 characters, and
    distinct for two owners' algorithms of the same name reserved by one caller. Made from
    the id alone (CALLER.OWNER.NAME.COMMIT12; names hold no dots), so wait_ready needs no
    more than the id."""
    pool_id = located(pool_id)[0]
    _, _, name, commit = pool_id.split(".", 3)
    tail = f"-{commit[:10]}-{short_hash(pool_id, 6)}"
    return f"{name[:MAX_NAME - len(tail)].rstrip('-')}{tail}"


def pool_namespace(pool_id: str, settings: KubernetesSettings) -> str:
    plain, namespace = located(pool_id)
    return namespace or namespace_name(plain.split(".", 1)[0], settings)


def account_namespace(account: str, settings: KubernetesSettings) -> str:
    """The namespace of a Tenant's or Quota's id (`ACCOUNT` or `ACCOUNT@NAMESPACE`)."""
    plain, namespace = located(account)
    return namespace or namespace_name(plain, settings)


def spec_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _meta(name: str, labels: dict[str, str], spec: Mapping[str, Any] | None,
          settings: KubernetesSettings, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {**own_labels(settings), **labels}
    if spec is not None:
        meta["annotations"] = {SPEC_ANNOTATION: spec_json(spec)}
    return meta


def own_labels(settings: KubernetesSettings) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, INSTANCE_LABEL: instance_label(settings)}


# --- tenants and quotas ---------------------------------------------------------------------

def namespace_manifest(account: str, settings: KubernetesSettings,
                       tenant: Tenant | None = None) -> dict[str, Any]:
    """The account's namespace; it carries the Tenant's spec only when it is the tenant's
    (a namespace made only to hold a quota has none, so observe reports no Tenant)."""
    name = account_namespace(account, settings)
    account = located(account)[0]
    spec = {"account": account, "type": tenant.type} if tenant else None
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(name, {ACCOUNT_LABEL: label_value(account)}, spec, settings)}


def quota_manifest(quota: Quota, settings: KubernetesSettings) -> dict[str, Any]:
    """maxEngines -> `pods`, maxGpus -> `requests.nvidia.com/gpu` (one pod is one engine)."""
    hard = {"pods": str(quota.max_engines)}
    if quota.max_gpus is not None:
        hard[f"requests.{GPU}"] = str(quota.max_gpus)
    account = located(quota.account)[0]
    spec = {"account": account, "max_engines": quota.max_engines,
            "max_gpus": quota.max_gpus, "source": quota.source}
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": _meta(QUOTA_NAME, {ACCOUNT_LABEL: label_value(account)}, spec,
                              settings, account_namespace(quota.account, settings)),
            "spec": {"hard": hard}}


# --- warm pools -----------------------------------------------------------------------------

def pool_labels(pool: WarmPool) -> dict[str, str]:
    return {POOL_LABEL: label_value(pool.id), CALLER_LABEL: label_value(pool.caller),
            ALGORITHM_LABEL: label_value(f"{pool.owner}.{pool.name}")}


def pool_env(pool: WarmPool) -> list[dict[str, str]]:
    """What `reconciler worker` reads (SPEC.md section 4); the code root is the image's
    default (/code)."""
    return [{"name": "RECONCILER_ENTRYPOINT", "value": pool.entrypoint},
            {"name": "RECONCILER_MODEL_PATH", "value": pool.model_path},
            {"name": "RECONCILER_MODEL_DIGEST", "value": pool.model_digest},
            {"name": "RECONCILER_POOL_ID", "value": pool.id},
            {"name": "RECONCILER_LISTEN", "value": f"0.0.0.0:{PORT}"},
            {"name": "RECONCILER_DATA_ROOT", "value": DATA_ROOT}]


def _plain(pool: WarmPool) -> WarmPool:
    """The pool as it is written: its plain id (an `ID@NAMESPACE` is placed apart)."""
    plain = located(pool.id)[0]
    return pool if plain == pool.id else dataclasses.replace(pool, id=plain)


def deployment_manifest(pool: WarmPool, settings: KubernetesSettings, *,
                        in_place: bool = False) -> dict[str, Any]:
    """The pool's Deployment. A rolling update surges one pod and never drops below the
    reserved count (maxUnavailable 0); `in_place` (the surge does not fit) swaps that."""
    namespace = pool_namespace(pool.id, settings)
    pool = _plain(pool)
    labels = pool_labels(pool)
    metadata = _meta(deployment_name(pool.id), labels, pool.to_json(), settings, namespace)
    metadata["annotations"][POOL_ANNOTATION] = pool.id
    resources: dict[str, str] = {"cpu": pool.cpu, "memory": pool.memory}
    if pool.gpu > 0:
        resources[GPU] = str(pool.gpu)
    container: dict[str, Any] = {
        "name": CONTAINER, "image": pool.image, "command": list(COMMAND),
        "env": pool_env(pool),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT},
                           "periodSeconds": 5},
        "startupProbe": startup_probe(pool.warmup_timeout),
    }
    pod_spec: dict[str, Any] = {"containers": [container], **scheduling_of(pool)}
    if settings.data_volume:
        container["volumeMounts"] = [{"name": DATA_VOLUME, "mountPath": DATA_ROOT,
                                      "readOnly": True}]
        pod_spec["volumes"] = [{"name": DATA_VOLUME, **_plain_data(settings.data_volume)}]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": {POOL_LABEL: labels[POOL_LABEL]}},
            "strategy": strategy(in_place),
            "template": {
                "metadata": {"labels": {**own_labels(settings), **labels},
                             "annotations": {DIGEST_ANNOTATION: pool.model_digest,
                                             POOL_ANNOTATION: pool.id}},
                "spec": pod_spec,
            },
        },
    }


def startup_probe(warmup_timeout: float) -> dict[str, Any]:
    """The version's warmupTimeout as the kubelet's startup probe: a replica not warm in
    time is restarted (the local agent stops it too). Probed every 5 s, every second
    when the timeout is shorter than that."""
    period = 5 if warmup_timeout >= 5 else 1
    return {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": period,
            "failureThreshold": max(1, math.ceil(warmup_timeout / period))}


def strategy(in_place: bool) -> dict[str, Any]:
    surge, unavailable = (0, 1) if in_place else (1, 0)
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge,
                                                       "maxUnavailable": unavailable}}


def _plain_data(value: Any) -> Any:
    """A plain copy of a (read-only mapping) volume source, for JSON and YAML."""
    if isinstance(value, Mapping):
        return {str(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_data(v) for v in value]
    return value


def pdb_manifest(pool: WarmPool, settings: KubernetesSettings,
                 api_version: str = PDB_VERSIONS[0]) -> dict[str, Any]:
    """The pool's PodDisruptionBudget: a drain never takes it below its reserved replicas."""
    namespace = pool_namespace(pool.id, settings)
    pool = _plain(pool)
    labels = pool_labels(pool)
    metadata = _meta(deployment_name(pool.id), labels, None, settings, namespace)
    metadata["annotations"] = {POOL_ANNOTATION: pool.id}
    return {"apiVersion": api_version, "kind": "PodDisruptionBudget", "metadata": metadata,
            "spec": {"minAvailable": pool.replicas,
                     "selector": {"matchLabels": {POOL_LABEL: labels[POOL_LABEL]}}}}


def scheduling_of(pool: WarmPool) -> dict[str, Any]:
    """The pod spec's nodeSelector / tolerations, from the pool's own `scheduling` (the
    config's gpu settings when it was compiled), not from this runtime's Settings. A GPU
    pool always tolerates `nvidia.com/gpu:NoSchedule`, the taint GPU nodes carry."""
    data: Any = {}
    if pool.scheduling:
        try:
            data = json.loads(pool.scheduling)
        except ValueError:
            data = {}
    if not isinstance(data, dict):
        data = {}
    result = {key: data[key] for key in ("nodeSelector", "tolerations") if data.get(key)}
    if pool.processor == "gpu" or pool.gpu > 0:
        tolerations = list(result.get("tolerations") or ())
        if not any(isinstance(t, Mapping) and tolerates(t, GPU_TOLERATION)
                   for t in tolerations):
            result["tolerations"] = [*tolerations, dict(GPU_TOLERATION)]
    return result


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' rule: does `toleration` tolerate `taint` ({key, value, effect})?"""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key, operator = toleration.get("key") or "", toleration.get("operator") or "Equal"
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


# --- everything, for `reconciler render` ----------------------------------------------------

def manifests(desired: DesiredState, settings: KubernetesSettings,
              pdb_version: str = PDB_VERSIONS[0]) -> list[dict[str, Any]]:
    """Every object of a desired state, namespaces first. A quota's namespace is made even
    when the account calls nothing, as apply does."""
    tenants = {t.account: t for t in desired.tenants}
    accounts = sorted(tenants.keys() | {q.account for q in desired.quotas})
    objects = [namespace_manifest(a, settings, tenants.get(a)) for a in accounts]
    objects += [quota_manifest(q, settings) for q in desired.quotas]
    for pool in desired.pools:
        objects += [deployment_manifest(pool, settings), pdb_manifest(pool, settings,
                                                                      pdb_version)]
    return objects
