"""KubernetesRuntime: the Runtime protocol on an API server.

- observe(): one labelled list per kind (namespaces, resource quotas,
  deployments, pods) across all namespaces, never a GET per object, so a
  no-op reconcile costs the same number of requests at 20 or 20,000 pools.
- apply(): server-side apply as field manager `reconciler`; deletes in the
  background. Ownership is checked first: an object of the same name without
  the managed-by label is never overwritten or deleted (a non-retryable fault
  names it).
- wait_ready(): polls the pool's Deployment until enough replicas of the
  current template are ready.
- gate: an optional callable the daemon sets; when it gives a reason (this
  process lost its Lease, or is stopping), apply() writes nothing and
  wait_ready() gives up at once.
- A namespace is deleted only when nothing else lives in it: deleting a
  Tenant or a Quota first lists the namespace for objects without the
  managed-by label (FOREIGN_LISTS; one request per kind, only on these
  deletes, never in observe). If there are any, the namespace stays and only
  the Tenant's mark (its spec annotation) is removed; a warning names them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.config.model import KubernetesSettings, Settings
from reconciler.errors import RuntimeFault
from reconciler.plan.plans import Action, Op
from reconciler.runtimes.base import NotReady
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes import observed
from reconciler.runtimes.kubernetes.client import (
    MERGE_PATCH,
    METADATA_LIST,
    Api,
    ApiError,
    connect,
)
from reconciler.states import LiveState, Node, Quota, Tenant, WarmPool

log = logging.getLogger("reconciler.runtimes.kubernetes")
POLL_INTERVAL = 0.25  # seconds between readiness checks in wait_ready

LISTS = {  # kind -> the cluster-wide list path; one request each in observe()
    "namespaces": "/api/v1/namespaces",
    "quotas": "/api/v1/resourcequotas",
    "deployments": "/apis/apps/v1/deployments",
    "pods": "/api/v1/pods",
}


# Namespaced kinds that may hold someone else's work (or data): a namespace holding any of
# them, without our label, is never deleted. Each entry: (kind, list path under the
# namespace, field selector leaving out what the cluster makes in every namespace).
FOREIGN_LISTS = (
    ("Deployment", "/apis/apps/v1/namespaces/{ns}/deployments", None),
    ("StatefulSet", "/apis/apps/v1/namespaces/{ns}/statefulsets", None),
    ("DaemonSet", "/apis/apps/v1/namespaces/{ns}/daemonsets", None),
    ("Pod", "/api/v1/namespaces/{ns}/pods", None),
    ("Service", "/api/v1/namespaces/{ns}/services", None),
    ("ConfigMap", "/api/v1/namespaces/{ns}/configmaps", "metadata.name!=kube-root-ca.crt"),
    ("Secret", "/api/v1/namespaces/{ns}/secrets", "type!=kubernetes.io/service-account-token"),
    ("PersistentVolumeClaim", "/api/v1/namespaces/{ns}/persistentvolumeclaims", None),
)
FOREIGN_SELECTOR = f"{m.MANAGED_BY}!={m.MANAGER}"  # also matches objects without the label
FOREIGN_NAMED = 3  # objects named per kind in the warning


def namespace_path(name: str) -> str:
    return f"/api/v1/namespaces/{name}"


def quota_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/resourcequotas/{m.QUOTA_NAME}"


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


class KubernetesRuntime:
    name = "kubernetes"

    def __init__(self, settings: Settings | None = None, *, kubeconfig: Path | None = None,
                 context: str | None = None, api_client: Any = None,
                 poll_interval: float = POLL_INTERVAL,
                 gate: Callable[[], str | None] | None = None) -> None:
        """`api_client`: an already made kubernetes ApiClient (tests pass one that counts
        requests); otherwise one is made from the kubeconfig / in-cluster credentials.
        `gate`: see set_gate."""
        self.settings: KubernetesSettings = (settings or Settings()).kubernetes
        self.api = Api(api_client if api_client is not None else connect(kubeconfig, context))
        self.poll_interval = poll_interval
        self.gate: Callable[[], str | None] | None = gate

    def set_gate(self, gate: Callable[[], str | None]) -> None:
        """`gate()`: None while this process may write, else why it may not."""
        self.gate = gate

    def _closed_because(self) -> str | None:
        return self.gate() if self.gate is not None else None

    # --- reads ----------------------------------------------------------------------------

    def observe(self) -> LiveState:
        items = {kind: self._list(path) for kind, path in LISTS.items()}
        return observed.live_state(items["namespaces"], items["quotas"],
                                   items["deployments"], items["pods"])

    def _list(self, path: str) -> list[dict[str, Any]]:
        items = self.api.get(path, labelSelector=m.SELECTOR).get("items") or []
        return list(items)

    def nodes(self) -> list[Node]:
        return observed.nodes(self.api.get("/api/v1/nodes").get("items") or [])

    # --- writes ---------------------------------------------------------------------------

    def apply(self, action: Action) -> None:
        """Create, scale, reload and update are one server-side apply of the whole object
        (idempotent); delete removes it if it is still there and ours."""
        reason = self._closed_because()
        if reason:
            raise RuntimeFault(f"{action.op} {action.kind} {action.id} not applied: {reason}")
        obj = action.obj
        if action.op is Op.DELETE:
            if isinstance(obj, Tenant):
                self._delete_tenant(obj)
            elif isinstance(obj, Quota):
                self._delete_quota(obj)
            else:
                self._delete_pool(obj)
        elif isinstance(obj, Tenant):
            self._apply_tenant(obj)
        elif isinstance(obj, Quota):
            self._apply_quota(obj)
        else:
            self._apply_pool(obj, action.in_place)

    def _apply_tenant(self, tenant: Tenant) -> None:
        manifest = m.namespace_manifest(tenant.account, self.settings, tenant)
        path = namespace_path(manifest["metadata"]["name"])
        self._owned(path, "Namespace")
        self.api.apply(path, manifest)

    def _delete_tenant(self, tenant: Tenant) -> None:
        """Delete the namespace, unless our quota still lives in it (a CapacityLimit for an
        account that no longer calls anything) or objects we did not create do: then only
        the Tenant's mark goes."""
        name = m.namespace_name(tenant.account, self.settings)
        path = namespace_path(name)
        namespace = self._owned(path, "Namespace")
        if namespace is None:
            return
        quota = self.api.get_or_none(quota_path(name))
        if quota is not None and observed.live(quota):
            self._unmark_tenant(path)
            return
        if self._keep_for_foreign(name, f"Tenant {tenant.account}"):
            self._unmark_tenant(path)
            return
        self.api.delete(path, namespace["metadata"].get("uid"))

    def _unmark_tenant(self, path: str) -> None:
        """The namespace stays, no longer a Tenant's (observe reports no Tenant for it)."""
        self.api.request("PATCH", path, content_type=MERGE_PATCH, body={
            "metadata": {"annotations": {m.SPEC_ANNOTATION: None}}})

    def _keep_for_foreign(self, namespace: str, what: str) -> bool:
        """True (and a warning naming them) when the namespace holds objects without our
        label: it is kept, since deleting it would delete them too."""
        found = self.foreign_objects(namespace)
        if not found:
            return False
        log.warning("%s deleted, but namespace %s is kept: it holds objects the reconciler "
                    "did not create (%s); delete them, then the namespace, by hand if they "
                    "should go", what, namespace, ", ".join(found))
        return True

    def foreign_objects(self, namespace: str) -> list[str]:
        """`Kind/name` of objects in the namespace that are not ours (a few per kind)."""
        found: list[str] = []
        for kind, template, fields in FOREIGN_LISTS:
            query = {"labelSelector": FOREIGN_SELECTOR, "limit": str(FOREIGN_NAMED)}
            if fields:
                query["fieldSelector"] = fields
            try:
                listed = self.api.request("GET", template.format(ns=namespace), query=query,
                                          accept=METADATA_LIST)  # names only: no Secret data
            except ApiError as exc:
                if exc.status == 404:  # the kind is not served here, or the namespace is gone
                    continue
                raise
            items = listed.get("items") or []
            found += [f"{kind}/{(i.get('metadata') or {}).get('name')}" for i in items]
            if (listed.get("metadata") or {}).get("continue"):
                found.append(f"more {kind}s")
        return found

    def _apply_quota(self, quota: Quota) -> None:
        namespace = m.namespace_name(quota.account, self.settings)
        self._ensure_namespace(quota.account)
        path = quota_path(namespace)
        self._owned(path, "ResourceQuota")
        self.api.apply(path, m.quota_manifest(quota, self.settings))

    def _ensure_namespace(self, account: str) -> None:
        """A quota needs its namespace even when the account calls nothing (then the
        namespace has no Tenant mark, and observe reports no Tenant for it)."""
        manifest = m.namespace_manifest(account, self.settings)
        path = namespace_path(manifest["metadata"]["name"])
        existing = self._owned(path, "Namespace")
        if existing is not None:
            if existing["metadata"].get("deletionTimestamp"):
                raise RuntimeFault(f"namespace {manifest['metadata']['name']} is being "
                                   "deleted; try again once it is gone", retryable=True)
            return
        try:
            self.api.request("POST", "/api/v1/namespaces", body=manifest,
                             query={"fieldManager": "reconciler"})
        except ApiError as exc:
            if exc.status != 409:  # made meanwhile: fine
                raise

    def _delete_quota(self, quota: Quota) -> None:
        """Delete the quota; and its namespace when no Tenant lives there (it was made for
        the quota alone)."""
        namespace_ = m.namespace_name(quota.account, self.settings)
        found = self._owned(quota_path(namespace_), "ResourceQuota")
        if found is not None:
            self.api.delete(quota_path(namespace_), found["metadata"].get("uid"))
        namespace = self._owned(namespace_path(namespace_), "Namespace")
        if namespace is None or m.tenant_from(namespace) is not None:
            return
        if self._keep_for_foreign(namespace_, f"Quota {quota.account}"):
            return
        self.api.delete(namespace_path(namespace_), namespace["metadata"].get("uid"))

    def _apply_pool(self, pool: WarmPool, in_place: bool) -> None:
        manifest = m.deployment_manifest(pool, self.settings, in_place=in_place)
        meta = manifest["metadata"]
        path = deployment_path(meta["namespace"], meta["name"])
        self._owned(path, "Deployment")
        try:
            self.api.apply(path, manifest)
        except ApiError as exc:
            if exc.status == 404:
                raise RuntimeFault(f"pool {pool.id}: namespace {meta['namespace']} does not "
                                   f"exist (was Tenant {pool.caller} applied?)") from None
            raise

    def _delete_pool(self, pool: WarmPool) -> None:
        path = deployment_path(m.namespace_name(pool.caller, self.settings),
                               m.deployment_name(pool.id))
        found = self._owned(path, "Deployment")
        if found is not None:
            self.api.delete(path, found["metadata"].get("uid"))

    def _owned(self, path: str, kind: str) -> dict[str, Any] | None:
        """The object at `path` if it exists and is ours; None if absent; a non-retryable
        fault if someone else's object has the name (it is never changed or deleted)."""
        obj = self.api.get_or_none(path)
        if obj is None:
            return None
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(m.MANAGED_BY) != m.MANAGER:
            name = path.rsplit("/", 1)[-1]
            raise RuntimeFault(f"{kind} {name} exists and is not managed by reconciler (no "
                               f"label {m.SELECTOR}); refusing to change or delete it. "
                               "Rename or remove it, or label it to hand it over.")
        return obj

    # --- waiting --------------------------------------------------------------------------

    def wait_ready(self, pool_id: str, replicas: int, timeout: float) -> None:
        """Poll the Deployment until `replicas` replicas of its current template are ready.
        A rollout past its progress deadline will not get there by waiting: NotReady."""
        path = deployment_path(m.pool_namespace(pool_id, self.settings),
                               m.deployment_name(pool_id))
        deadline = time.monotonic() + timeout
        while True:
            reason = self._closed_because()
            if reason:
                raise NotReady(f"pool {pool_id}: stopped waiting ({reason}); the old pool "
                               "keeps serving")
            deployment = self.api.get_or_none(path)
            if deployment is None:
                raise NotReady(f"pool {pool_id}: its Deployment does not exist")
            ready = observed.ready_count(deployment)
            if ready >= replicas:
                return
            error = observed.deployment_error(deployment)
            if error and error.startswith("ProgressDeadlineExceeded"):
                raise NotReady(f"pool {pool_id} is failing: {error}; the old pool keeps serving")
            if time.monotonic() >= deadline:
                why = f" (last error: {error})" if error else ""
                raise NotReady(f"pool {pool_id}: {ready} of {replicas} replicas ready after "
                               f"{timeout:.0f}s{why}; the old pool keeps serving")
            time.sleep(min(self.poll_interval, max(deadline - time.monotonic(), 0.0)))

    def report(self) -> dict[str, Any]:
        """What `status` shows beyond the pools: the schedulable nodes. (No agent: the
        cluster's controllers and kubelets do its work.)"""
        return {"nodes": [{"name": n.name, "processor": n.processor, "cpu_millis": n.cpu_millis,
                           "memory_bytes": n.memory_bytes, "gpu": n.gpu, "pods": n.pods,
                           "emulated_gpu": False} for n in self.nodes()]}

    def record_apply(self, result: dict[str, Any], source_commit: str | None) -> None:
        """No audit rows of our own: the cluster's objects (and their spec annotations) are
        the record, and the plan journal in the state directory has the rest."""

    def save_roots(self) -> None:
        """Nothing to record: pods get their model and code from the image and env."""

    def close(self) -> None:
        self.api.close()
