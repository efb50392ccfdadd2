"""Listed objects -> LiveState, Nodes and pool health. Pure: plain dicts in, values out.

Health is a pure function per kind, as in gitops-engine, so each state has
its own small test. Objects being deleted (a namespace stays Terminating
until its controller finalizes it) are no longer part of the live state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from reconciler.quantities import cpu_millis, memory_bytes
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.states import LiveState, Node, PoolStatus, ReplicaStatus

Obj = Mapping[str, Any]
BAD_WAITING = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
               "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def live(obj: Obj) -> bool:
    """Ours (managed-by label) and not being deleted."""
    meta = _meta(obj)
    return (meta.get("labels") or {}).get(m.MANAGED_BY) == m.MANAGER and \
        not meta.get("deletionTimestamp")


def live_state(namespaces: Iterable[Obj], quotas: Iterable[Obj], deployments: Iterable[Obj],
               pods: Iterable[Obj]) -> LiveState:
    """The LiveState of four labelled lists. The revision hashes each object's uid,
    generation and spec annotation (and a quota's hard limits): it moves when what the
    reconciler wrote moves, never when only status (ready counts) does."""
    namespaces = list(namespaces)
    # A namespace being deleted takes its quota and pools along: none of them is live.
    gone = {_meta(o).get("name") for o in namespaces if _meta(o).get("deletionTimestamp")}
    namespaces = [o for o in namespaces if live(o)]
    quotas = [o for o in quotas if live(o) and _meta(o).get("namespace") not in gone]
    deployments = [o for o in deployments if live(o) and _meta(o).get("namespace") not in gone]
    tenants = _unique((m.tenant_from(o) for o in namespaces), key=lambda t: t.account)
    limits = _unique((m.quota_from(o) for o in quotas), key=lambda q: q.account)
    owned = [(o, m.pool_from(o)) for o in deployments]
    pools = _unique((p for _, p in owned), key=lambda p: p.id)
    by_pool = _pods_by_pool(pods)
    status = {pool.id: pool_status(obj, by_pool.get(pool.id, ())) for obj, pool in owned
              if pool is not None}
    return LiveState(tenants=tenants, quotas=limits, pools=pools,
                     status=MappingProxyType(status),
                     revision=revision([*namespaces, *quotas, *deployments]))


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
        hard = (obj.get("spec") or {}).get("hard") if obj.get("kind") != "Deployment" else None
        rows.append((meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or "",
                     str(meta.get("generation") or ""),
                     (meta.get("annotations") or {}).get(m.SPEC_ANNOTATION, ""),
                     json.dumps(hard, sort_keys=True) if hard else ""))
    for row in sorted(rows):
        digest.update("\x1f".join(row).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


# --- pools and replicas ---------------------------------------------------------------------

def _pods_by_pool(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
    result: dict[str, list[Obj]] = {}
    for pod in pods:
        pool = (_meta(pod).get("annotations") or {}).get(m.POOL_ANNOTATION)
        if pool:
            result.setdefault(pool, []).append(pod)
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


# --- nodes ----------------------------------------------------------------------------------

def schedulable(node: Obj) -> bool:
    """Not cordoned, and Ready unless it reports no conditions at all (envtest nodes)."""
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or ()
    ready = [c for c in conditions if c.get("type") == "Ready"]
    return not ready or ready[0].get("status") == "True"


def to_node(node: Obj) -> Node:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return Node(name=_meta(node).get("name", ""),
                cpu_millis=cpu_millis(allocatable.get("cpu", "0")),
                memory_bytes=memory_bytes(allocatable.get("memory", "0")),
                pods=int(allocatable.get("pods", "0")),
                gpu=int(allocatable.get(m.GPU, "0")),
                labels=MappingProxyType(dict(_meta(node).get("labels") or {})))


def nodes(items: Iterable[Obj]) -> list[Node]:
    return sorted((to_node(n) for n in items if schedulable(n)), key=lambda n: n.name)
