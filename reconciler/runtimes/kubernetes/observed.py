"""Listed objects -> LiveState, the runtime's index of them, and pool health. Pure.

Health is a pure function per kind, as in gitops-engine, so each state has
its own small test. Objects being deleted (a namespace stays Terminating
until its controller finalizes it) are no longer part of the live state, but
the index remembers such namespaces: a write into one waits for it.

An object of this instance found outside the namespace the current settings
give it (namespacePrefix changed, instance set explicitly) is reported as
`ID@NAMESPACE`, so the plan creates its replacement and deletes it after.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reconciler.config.model import KubernetesSettings
from reconciler.runtimes.kubernetes import drift, readback
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.states import LiveState, PoolStatus, Quota, ReplicaStatus, Tenant, WarmPool

Obj = Mapping[str, Any]
BAD_WAITING = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
               "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
NAMED = 5  # objects named per warning


# --- API paths ------------------------------------------------------------------------------

def namespace_path(name: str) -> str:
    return f"/api/v1/namespaces/{name}"


def quota_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/resourcequotas/{m.QUOTA_NAME}"


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def pdb_path(version: str, namespace: str, name: str) -> str:
    return f"/apis/{version}/namespaces/{namespace}/poddisruptionbudgets/{name}"


def object_path(kind: str, obj: Obj, pdb_version: str) -> str:
    """The API path of a listed object (list items carry no kind: the list says it)."""
    meta = _meta(obj)
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    if kind == "ResourceQuota":
        return quota_path(namespace)
    if kind == "Deployment":
        return deployment_path(namespace, name)
    if kind == "PodDisruptionBudget":
        return pdb_path(pdb_version, namespace, name)
    return namespace_path(name)


# --- the live state -------------------------------------------------------------------------

@dataclass
class Namespace:
    uid: str
    terminating: bool
    tenant: bool  # carries a Tenant's mark (its spec annotation)


@dataclass
class Index:
    """What writes need to know of the objects observed: the uid of each (by API path,
    a precondition for writing it) and our namespaces."""

    uids: dict[str, str] = field(default_factory=dict)
    namespaces: dict[str, Namespace] = field(default_factory=dict)


@dataclass
class Lists:
    """One labelled list per kind; `others`: namespaces of other instances (or None)."""

    namespaces: list[dict[str, Any]]
    quotas: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    pdbs: list[dict[str, Any]]
    others: list[dict[str, Any]] | None = None


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def live(obj: Obj) -> bool:
    """Ours (managed-by label) and not being deleted."""
    meta = _meta(obj)
    return (meta.get("labels") or {}).get(m.MANAGED_BY) == m.MANAGER and \
        not meta.get("deletionTimestamp")


def live_state(lists: Lists, settings: KubernetesSettings,
               pdb_version: str = m.PDB_VERSIONS[0]) -> tuple[LiveState, Index]:
    """The LiveState of the labelled lists, and the index. The revision hashes each
    object's uid, generation and spec annotation (and a quota's hard limits): it moves
    when what the reconciler wrote moves, never when only status (ready counts) does."""
    index = Index()
    for obj in lists.namespaces:
        meta = _meta(obj)
        index.namespaces[meta.get("name", "")] = Namespace(
            meta.get("uid", ""), bool(meta.get("deletionTimestamp")),
            m.SPEC_ANNOTATION in (meta.get("annotations") or {}))
    gone = {name for name, ns in index.namespaces.items() if ns.terminating}
    namespaces = [o for o in lists.namespaces if live(o)]
    quotas, deployments, pdbs = ([o for o in items if live(o) and
                                  _meta(o).get("namespace") not in gone]
                                 for items in (lists.quotas, lists.deployments, lists.pdbs))
    for kind, items in (("Namespace", namespaces), ("ResourceQuota", quotas),
                        ("Deployment", deployments), ("PodDisruptionBudget", pdbs)):
        for obj in items:
            index.uids[object_path(kind, obj, pdb_version)] = _meta(obj).get("uid", "")
    tenants = _unique((_tenant(o, settings) for o in namespaces), key=lambda t: t.account)
    limits = _unique((_quota(o, settings) for o in quotas), key=lambda q: q.account)
    by_name = {(_meta(p).get("namespace"), _meta(p).get("name")): p for p in pdbs}
    writers: dict[tuple[str, str], list[str]] = {}
    added: dict[tuple[str, str], list[str]] = {}  # pod template fields others added
    owned: list[tuple[Obj, WarmPool]] = []
    for obj in deployments:
        pool = _pool(obj, by_name, settings, (writers, added), pdb_version)
        if pool is not None:
            owned.append((obj, pool))
    for obj in quotas:
        _writers("ResourceQuota", obj,
                 m.quota_manifest(_quota(obj, settings) or Quota("", 0), settings), writers)
    pools = _unique((p for _, p in owned), key=lambda p: p.id)
    by_pool = _pods_by_pool(lists.pods)
    status = {pool.id: pool_status(obj, by_pool.get((_meta(obj).get("namespace", ""),
                                                     m.located(pool.id)[0]), ()))
              for obj, pool in owned}
    warnings = writer_warnings(writers) + added_warnings(added) + \
        other_instances(lists.others, settings) + terminating(gone)
    state = LiveState(tenants=tenants, quotas=limits, pools=pools,
                      status=MappingProxyType(status),
                      revision=revision([*namespaces, *quotas, *deployments, *pdbs]),
                      warnings=tuple(warnings))
    return state, index


def _placed(namespace: str, account: str, settings: KubernetesSettings) -> bool:
    """Is `namespace` where the settings put the account's objects? (Always, when the
    runtime reads without knowing the prefix: m.ANY_PREFIX.)"""
    return settings.namespace_prefix == m.ANY_PREFIX or \
        namespace == m.namespace_name(account, settings)


def _tenant(obj: Obj, settings: KubernetesSettings) -> Tenant | None:
    tenant = readback.tenant_from(obj)
    name = _meta(obj).get("name", "")
    if tenant is None or _placed(name, tenant.account, settings):
        return tenant
    return Tenant(m.elsewhere(tenant.account, name), tenant.type)


def _quota(obj: Obj, settings: KubernetesSettings) -> Quota | None:
    quota = readback.quota_from(obj)
    namespace = _meta(obj).get("namespace", "")
    if quota is None or _placed(namespace, quota.account, settings):
        return quota
    return Quota(m.elsewhere(quota.account, namespace), quota.max_engines, quota.max_gpus,
                 quota.source)


Found = dict[tuple[str, str], list[str]]  # (manager, "KIND path") -> the objects


def _pool(obj: Obj, pdbs: Mapping[tuple[Any, Any], Obj], settings: KubernetesSettings,
          found: tuple[Found, Found], pdb_version: str) -> WarmPool | None:
    """The live pool of a Deployment: fields read back, the rest compared (drift);
    `found`: where other writers of our fields, and of fields added to the pod
    template, are noted."""
    writers, added = found
    applied = readback.applied_pool(obj)
    pool = readback.pool_from(obj, applied) if applied is not None else None
    if pool is None or applied is None:
        return None
    meta = _meta(obj)
    namespace = meta.get("namespace", "")
    if not _placed(namespace, pool.caller, settings):
        pool = WarmPool.from_json({**pool.to_json(), "id": m.elsewhere(pool.id, namespace)})
        applied = WarmPool.from_json({**applied.to_json(), "id": pool.id})
    want = m.deployment_manifest(pool, settings)
    _writers("Deployment", obj, want, writers)
    _note("Deployment", obj, drift.foreign_template_fields(obj, want), added)
    pdb = pdbs.get((namespace, meta.get("name")))
    want_pdb = m.pdb_manifest(applied, settings, pdb_version)
    changed = drift.pool_drift(obj, want, pdb, want_pdb)
    if pdb is not None:
        _writers("PodDisruptionBudget", pdb, want_pdb, writers)
    if not changed:
        return pool
    return WarmPool.from_json({**pool.to_json(), "drift": changed,
                               "drift_rolls": drift.template_drift(obj, want)})


def _writers(kind: str, obj: Obj, manifest: Mapping[str, Any], found: Found) -> None:
    _note(kind, obj, drift.shared_writers(obj, manifest), found)


def _note(kind: str, obj: Obj, fields: Iterable[tuple[str, str]], found: Found) -> None:
    for manager, path in fields:
        meta = _meta(obj)
        found.setdefault((manager, f"{kind} {path}"), []).append(
            f"{meta.get('namespace')}/{meta.get('name')}")


def _named(names: list[str]) -> str:
    return ", ".join(names[:NAMED]) + (f" and {len(names) - NAMED} more"
                                       if len(names) > NAMED else "")


def writer_warnings(found: Found) -> list[str]:
    """One warning per (other field manager, field): the reconciler's next apply takes
    the field back, and the other writer will change it again."""
    return [f"field manager {manager!r} also writes {what}, which the reconciler sets, on "
            f"{len(names)} object(s) ({_named(names)}): each apply takes it back and the "
            "other writer will change it again; stop one of them"
            for (manager, what), names in sorted(found.items())]


def added_warnings(found: Found) -> list[str]:
    """One warning per (other field manager, field it added to the pod template): the
    engines run with it, and server-side apply cannot remove a field another manager
    owns."""
    return [f"field manager {manager!r} added {what} to {len(names)} object(s) "
            f"({_named(names)}), which the reconciler does not set and its apply cannot "
            "remove (another manager owns it): the engine pods run with it. Find out who "
            "added it; remove it by hand, or delete the Deployment and apply again"
            for (manager, what), names in sorted(found.items())]


def terminating(names: Iterable[str]) -> list[str]:
    """This instance's namespaces being deleted: the plan shows their objects as absent
    (creates), and apply defers those writes until the namespace is gone."""
    names = sorted(names)
    if not names:
        return []
    return [f"{len(names)} namespace(s) of this instance are being deleted (Terminating): "
            f"{_named(names)}. What the plan writes into them is deferred until they are gone (the "
            "next apply or daemon pass does it); if one stays, its finalizers or contents "
            "hold it (kubectl get namespace NAME -o yaml)"]


def other_instances(others: list[dict[str, Any]] | None,
                    settings: KubernetesSettings) -> list[str]:
    """When the instance is the namespacePrefix (not set explicitly): the namespaces other
    instances hold, which remain if they were this config's before its prefix changed."""
    if not others:
        return []
    found: dict[str, list[str]] = {}
    for obj in others:
        meta = _meta(obj)
        if not meta.get("deletionTimestamp"):
            instance = (meta.get("labels") or {}).get(m.INSTANCE_LABEL, "")
            found.setdefault(instance, []).append(meta.get("name", ""))
    lines = []
    for instance, names in sorted(found.items()):
        names.sort()
        shown = ", ".join(names[:NAMED]) + (f" and {len(names) - NAMED} more"
                                            if len(names) > NAMED else "")
        lines.append(
            f"{len(names)} namespace(s) of another reconciler instance ({m.INSTANCE_LABEL}="
            f"{instance}) remain on this cluster: {shown}. This config's instance is its "
            f"namespacePrefix ({settings.namespace_prefix!r}); if those objects were this "
            "config's under another namespacePrefix, they stay where they are, unmanaged: "
            "delete them, or set Settings.kubernetes.instance to their instance to move "
            "them. Setting instance explicitly also silences this warning")
    return lines


def _unique(items: Iterable[Any], key: Any) -> tuple[Any, ...]:
    """Sorted by key, the first of each key kept (None dropped: not made by us)."""
    seen: dict[str, Any] = {}
    for item in items:
        if item is not None:
            seen.setdefault(key(item), item)
    return tuple(seen[k] for k in sorted(seen))


def revision(objects: Iterable[Obj]) -> str:
    digest = hashlib.sha256()
    rows = []
    for obj in objects:
        meta = _meta(obj)
        hard = (obj.get("spec") or {}).get("hard")
        rows.append((meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or "",
                     str(meta.get("generation") or ""),
                     (meta.get("annotations") or {}).get(m.SPEC_ANNOTATION, ""),
                     json.dumps(hard, sort_keys=True) if hard else ""))
    for row in sorted(rows):
        digest.update("\x1f".join(row).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


# --- pools and replicas ---------------------------------------------------------------------

def _pods_by_pool(pods: Iterable[Obj]) -> dict[tuple[str, str], list[Obj]]:
    result: dict[tuple[str, str], list[Obj]] = {}
    for pod in pods:
        meta = _meta(pod)
        pool = (meta.get("annotations") or {}).get(m.POOL_ANNOTATION)
        if pool:
            result.setdefault((meta.get("namespace", ""), pool), []).append(pod)
    return result


def ready_count(deployment: Obj) -> int:
    """Ready replicas of the current template: min(ready, updated), and 0 until the
    controller has seen the latest spec (observedGeneration >= generation)."""
    status = deployment.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(_meta(deployment).get("generation") or 0):
        return 0
    return min(int(status.get("readyReplicas") or 0), int(status.get("updatedReplicas") or 0))


def deployment_error(deployment: Obj) -> str | None:
    """ReplicaFailure (e.g. a quota refused a pod) or a rollout past its deadline."""
    for cond in (deployment.get("status") or {}).get("conditions") or ():
        failing = (cond.get("type") == "ReplicaFailure" and cond.get("status") == "True") or \
            (cond.get("type") == "Progressing" and cond.get("status") == "False")
        if failing:
            return f"{cond.get('reason') or cond['type']}: {cond.get('message') or ''}".rstrip(
                ": ")
    return None


def replica_status(pod: Obj) -> ReplicaStatus:
    meta, status = _meta(pod), pod.get("status") or {}
    error = None
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in BAD_WAITING:
            error = f"{waiting['reason']}: {waiting.get('message') or ''}".rstrip(": ")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or ())
    if meta.get("deletionTimestamp"):
        state = "stopping"
    elif status.get("phase") == "Failed" or error:
        state = "failed"
    elif ready:
        state = "ready"
    elif status.get("phase") == "Running":
        state = "warming"
    else:
        state = "starting"
    digest = (meta.get("annotations") or {}).get(m.DIGEST_ANNOTATION)
    return ReplicaStatus(id=meta.get("name", ""), state=state, model_digest=digest,
                         started_at=status.get("startTime"), error=error)


def pool_status(deployment: Obj, pods: Iterable[Obj]) -> PoolStatus:
    replicas = tuple(sorted((replica_status(p) for p in pods), key=lambda r: r.id))
    error = deployment_error(deployment) or next(
        (f"pod {r.id}: {r.error}" for r in replicas if r.error), None)
    return PoolStatus(ready=ready_count(deployment), error=error, replicas=replicas)
