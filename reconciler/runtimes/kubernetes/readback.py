"""Objects the reconciler applied, read back into the values they were made from. Pure.

Each object's `reconciler.io/spec` annotation holds the whole value it was
applied from, so observe() gives back exactly what was applied and a second
plan is empty. Fields a person could change by hand are read from the object
itself instead, so such drift shows up in the next plan: a quota's hard
limits; a pool's replicas, image, resources, env (entrypoint, model path),
digest annotation, nodeSelector and tolerations. drift.py compares the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.quantities import parse
from reconciler.runtimes.kubernetes.manifests import (
    CONTAINER,
    DIGEST_ANNOTATION,
    GPU,
    SPEC_ANNOTATION,
    scheduling_of,
    spec_json,
)
from reconciler.states import Quota, Tenant, WarmPool


def tenant_from(obj: Mapping[str, Any]) -> Tenant | None:
    data = _spec_of(obj)
    return None if data is None else Tenant(data["account"], data.get("type", "user"))


def quota_from(obj: Mapping[str, Any]) -> Quota | None:
    """The Quota a ResourceQuota was applied from, its limits read from `spec.hard` (a hand
    edit of the hard limits is drift: an `update` in the next plan)."""
    data = _spec_of(obj)
    if data is None:
        return None
    try:
        quota = Quota(str(data["account"]), int(data["max_engines"]),
                      None if data.get("max_gpus") is None else int(data["max_gpus"]),
                      str(data.get("source", "")))
    except (KeyError, TypeError, ValueError):
        return None
    hard = (obj.get("spec") or {}).get("hard") or {}
    return Quota(quota.account, _hard_int(hard.get("pods")),
                 _hard_int(hard.get(f"requests.{GPU}")), quota.source)


def _hard_int(value: Any) -> Any:
    """A hard limit as an int (None when absent; the text itself when it is not a whole
    number, so it differs from any desired limit)."""
    if value is None:
        return None
    try:
        number = parse(str(value))
    except ValueError:
        return str(value)
    return int(number) if number == number.to_integral_value() else str(value)


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(SPEC_ANNOTATION)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _live_scheduling(pool: WarmPool, pod_spec: Mapping[str, Any]) -> str:
    """The pool's `scheduling` while the pod spec still says the same; else the canonical
    JSON of what the pod spec says now (someone edited it: drift, an `update`)."""
    live = {key: pod_spec[key] for key in ("nodeSelector", "tolerations") if pod_spec.get(key)}
    if live == scheduling_of(pool):
        return pool.scheduling
    return spec_json(live) if live else ""


def applied_pool(obj: Mapping[str, Any]) -> WarmPool | None:
    """The WarmPool a Deployment was applied from (its spec annotation), or None."""
    data = _spec_of(obj)
    if data is None:
        return None
    try:
        return WarmPool.from_json(data)
    except (TypeError, ValueError):
        return None


def pool_from(obj: Mapping[str, Any], applied: WarmPool | None = None) -> WarmPool | None:
    """The WarmPool a Deployment was applied from, with hand-editable fields read from the
    object (replicas, image, resources, env, digest) so drift shows in the next plan."""
    pool = applied if applied is not None else applied_pool(obj)
    if pool is None:
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
        "gpu": _hard_int(limits.get(GPU, 0)) if limits.get(GPU) is not None else 0,
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
