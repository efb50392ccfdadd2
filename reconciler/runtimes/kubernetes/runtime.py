"""KubernetesRuntime: the Runtime protocol on an API server.

- observe(): one labelled list per kind (namespaces, resource quotas,
  deployments, pods, pod disruption budgets), each by managed-by AND this
  instance's label, paged, never a GET per object, so a no-op reconcile costs
  the same number of requests at 20 or 20,000 pools. Namespaces are read
  metadata-only. With `watch` (the daemon), the lists come from informer
  caches (watches.py) and a no-op pass makes no request at all.
- nodes(): the nodes, and the pods running there that this instance does not
  manage (their requests are taken off the capacity; nodes.py).
- apply(): server-side apply as field manager `reconciler`, one request per
  object, ownership enforced by preconditions (writes.py); deletes in the
  background. `concurrency` actions of one ordering stage may run at once.
  A delete that finds nothing says "already gone" (not "deleted").
- wait_ready(): polls the pool's Deployment (its cache, with `watch`).
- gate: an optional callable the daemon sets; when it gives a reason (this
  process lost its Lease, or is stopping), apply() writes nothing and
  wait_ready() gives up at once.
- A namespace is deleted only when nothing else lives in it: deleting a
  Tenant or a Quota first lists the namespace for objects without the
  managed-by label (FOREIGN_LISTS; one metadata-only request per kind, only on
  these deletes, never in observe). If there are any, the namespace stays and
  only the Tenant's mark (its spec annotation) is removed; a warning names them.
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
from reconciler.runtimes.kubernetes import nodes as k8s_nodes
from reconciler.runtimes.kubernetes import observed, readback
from reconciler.runtimes.kubernetes.client import (
    FIRST_DELAY,
    MAX_DELAY,
    METADATA_LIST,
    Api,
    ApiError,
    connect,
)
from reconciler.runtimes.kubernetes.observed import Index, Lists
from reconciler.runtimes.kubernetes.writes import Writer
from reconciler.states import LiveState, Node, Quota, Tenant, WarmPool

log = logging.getLogger("reconciler.runtimes.kubernetes")
# Per (API server, instance): the last "no gpu node can take a gpu pool" logged, so that a
# daemon, which makes a runtime per pass, says it once while it lasts.
_UNUSABLE_GPU: dict[tuple[str, str], str | None] = {}
POLL_INTERVAL = 0.25  # seconds between readiness checks in wait_ready
CONCURRENCY = 16  # writes in flight within one ordering stage
ALREADY_GONE = "already gone: there was nothing to delete"

LISTS = {  # kind -> the cluster-wide list path; one (paged) list each in observe()
    "namespaces": "/api/v1/namespaces",
    "quotas": "/api/v1/resourcequotas",
    "deployments": "/apis/apps/v1/deployments",
    "pods": "/api/v1/pods",
    "pdbs": "/apis/{pdb}/poddisruptionbudgets",
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


def foreign_selector(settings: KubernetesSettings) -> str:
    """Objects that are not this instance's: without its instance label (someone else's,
    unlabelled) or with another instance's (a second reconciler sharing the namespace).
    `!=` also matches objects without the label; every object this instance makes, and
    its Deployments' pods, carry it."""
    return f"{m.INSTANCE_LABEL}!={m.instance_label(settings)}"


FOREIGN_NAMED = 3  # objects named per kind in the warning


def other_instances_selector(settings: KubernetesSettings) -> str:
    label = m.INSTANCE_LABEL
    return f"{m.SELECTOR},{label},{label}!={m.instance_label(settings)}"


def discover_pdb_version(api: Api) -> str:
    """policy/v1 where the server offers PodDisruptionBudgets there (1.21+), else v1beta1."""
    try:
        group = api.get("/apis/policy/v1")
    except ApiError as exc:
        if exc.status == 404:
            return m.PDB_VERSIONS[1]
        raise
    names = {r.get("name") for r in group.get("resources") or ()}
    return m.PDB_VERSIONS[0] if "poddisruptionbudgets" in names else m.PDB_VERSIONS[1]


class KubernetesRuntime:
    name = "kubernetes"

    def __init__(self, settings: Settings | None = None, *, kubeconfig: Path | None = None,
                 context: str | None = None, api_client: Any = None,
                 poll_interval: float = POLL_INTERVAL,
                 gate: Callable[[], str | None] | None = None,
                 watch: float | None = None, concurrency: int = CONCURRENCY,
                 retry_delays: tuple[float, float] = (FIRST_DELAY, MAX_DELAY)) -> None:
        """`api_client`: an already made kubernetes ApiClient; otherwise one is made from the
        kubeconfig / in-cluster credentials. `gate`: see set_gate. `watch`: keep informer
        caches (shared by every runtime of this process on the same cluster and instance),
        relisted every `watch` seconds. `retry_delays`: first and longest backoff."""
        self.settings: KubernetesSettings = (settings or Settings()).kubernetes
        self.api = Api(api_client if api_client is not None else connect(kubeconfig, context),
                       delays=retry_delays)
        self.poll_interval = poll_interval
        self.gate: Callable[[], str | None] | None = gate
        self.concurrency = max(1, concurrency)
        self._index = Index()
        self._pdb_version: str | None = None
        self.cache: Any = None
        if watch is not None:
            from reconciler.runtimes.kubernetes import watches

            self.cache = watches.shared(kubeconfig, context, self.settings, watch,
                                        lambda: connect(kubeconfig, context))
        self.writer = Writer(self.api, self.settings, lambda: self._index,
                             self.cache.written if self.cache is not None else None)

    def set_gate(self, gate: Callable[[], str | None]) -> None:
        """`gate()`: None while this process may write, else why it may not."""
        self.gate = gate

    def _closed_because(self) -> str | None:
        return self.gate() if self.gate is not None else None

    # --- reads ----------------------------------------------------------------------------

    @property
    def pdb_version(self) -> str:
        """The PodDisruptionBudget API this server offers (asked once)."""
        if self._pdb_version is None:
            self._pdb_version = self.cache.pdb_version() if self.cache is not None else \
                discover_pdb_version(self.api)
        return self._pdb_version

    def observe(self) -> LiveState:
        lists = self.cache.lists() if self.cache is not None else None
        if lists is None:
            lists = self._list_all()
        state, index = observed.live_state(lists, self.settings, self.pdb_version)
        self._index = index
        return state

    def _list_all(self) -> Lists:
        labels = m.selector(self.settings)
        items = {kind: self.api.list(path.format(pdb=self.pdb_version), labels=labels,
                                     metadata_only=kind == "namespaces").items
                 for kind, path in LISTS.items()}
        others = None
        if self.settings.instance is None:
            others = self.api.list(LISTS["namespaces"], metadata_only=True,
                                   labels=other_instances_selector(self.settings)).items
        return Lists(items["namespaces"], items["quotas"], items["deployments"], items["pods"],
                     items["pdbs"], others)

    def nodes(self) -> list[Node]:
        found = self.cache.node_lists() if self.cache is not None else None
        if found is None:
            found = (self.api.list("/api/v1/nodes").items,
                     self.api.list("/api/v1/pods", fields=k8s_nodes.FOREIGN_POD_FIELDS,
                                   labels=k8s_nodes.foreign_pod_labels(self.settings)).items)
        result = k8s_nodes.nodes(found[0], found[1], self.settings)
        why = k8s_nodes.unusable_gpu_nodes(found[0], result, self.settings)
        key = (self.api.host, m.instance_label(self.settings))
        if why is not None and why != _UNUSABLE_GPU.get(key):  # once while it lasts (daemon)
            log.warning("%s", why)
        _UNUSABLE_GPU[key] = why
        return result

    # --- writes ---------------------------------------------------------------------------

    def apply(self, action: Action) -> str | None:
        """Create, scale, reload and update are one server-side apply per object
        (idempotent); delete removes it if it is still there and ours. Returns
        ALREADY_GONE when a delete found nothing to delete."""
        reason = self._closed_because()
        if reason:
            raise RuntimeFault(f"{action.op} {action.kind} {action.id} not applied: {reason}")
        obj = action.obj
        if action.op is Op.DELETE:
            if isinstance(obj, Tenant):
                done = self._delete_tenant(obj)
            elif isinstance(obj, Quota):
                done = self._delete_quota(obj)
            else:
                done = self._delete_pool(obj)
            return None if done else ALREADY_GONE
        if isinstance(obj, Tenant):
            self._apply_tenant(obj)
        elif isinstance(obj, Quota):
            self._apply_quota(obj)
        else:
            self._apply_pool(obj, action.in_place)
        return None

    def _apply_tenant(self, tenant: Tenant) -> None:
        manifest = m.namespace_manifest(tenant.account, self.settings, tenant)
        name = manifest["metadata"]["name"]
        self.writer.check_namespace(name, f"Tenant {tenant.account}")
        self.writer.put(observed.namespace_path(name), manifest, "Namespace")

    def _delete_tenant(self, tenant: Tenant) -> bool:
        """Delete the namespace, unless our quota still lives in it (a CapacityLimit for an
        account that no longer calls anything) or objects we did not create do: then only
        the Tenant's mark goes."""
        name = m.account_namespace(tenant.account, self.settings)
        known = self.writer.namespace(name)
        quota = bool(self.writer.uid(observed.quota_path(name)))
        if known is None:  # not observed by this runtime: read what the index would say
            found = self.writer.existing_namespace(observed.namespace_path(name))
            if found is None:
                return False
            held = self.api.get_or_none(observed.quota_path(name))
            quota = held is not None and observed.live(held)
        elif known.terminating:
            return False
        if quota or self._keep_for_foreign(name, f"Tenant {tenant.account}"):
            self.writer.unmark_tenant(name)
            return True
        return self.writer.delete(observed.namespace_path(name), "Namespace")

    def _keep_for_foreign(self, namespace: str, what: str) -> bool:
        """True (and a warning naming them) when the namespace holds objects that are not
        this instance's: it is kept, since deleting it would delete them too."""
        found = self.foreign_objects(namespace)
        if not found:
            return False
        log.warning("%s deleted, but namespace %s is kept: it holds objects this reconciler "
                    "instance did not create (%s); delete them, then the namespace, by hand if "
                    "they should go", what, namespace, ", ".join(found))
        return True

    def foreign_objects(self, namespace: str) -> list[str]:
        """`Kind/name` of objects in the namespace that are not this instance's (a few per
        kind)."""
        found: list[str] = []
        for kind, template, fields in FOREIGN_LISTS:
            query = {"labelSelector": foreign_selector(self.settings),
                     "limit": str(FOREIGN_NAMED)}
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
        self.writer.ensure_namespace(quota.account)
        namespace = m.account_namespace(quota.account, self.settings)
        self.writer.put(observed.quota_path(namespace), m.quota_manifest(quota, self.settings),
                        "ResourceQuota")

    def _delete_quota(self, quota: Quota) -> bool:
        """Delete the quota; and its namespace when no Tenant lives there (it was made for
        the quota alone)."""
        name = m.account_namespace(quota.account, self.settings)
        done = self.writer.delete(observed.quota_path(name), "ResourceQuota")
        known = self.writer.namespace(name)
        if known is None:
            found = self.writer.existing_namespace(observed.namespace_path(name))
            if found is None or readback.tenant_from(found) is not None:
                return done
        elif known.tenant or known.terminating:
            return done
        if not self._keep_for_foreign(name, f"Quota {quota.account}"):
            self.writer.delete(observed.namespace_path(name), "Namespace")
        return done

    def _apply_pool(self, pool: WarmPool, in_place: bool) -> None:
        manifest = m.deployment_manifest(pool, self.settings, in_place=in_place)
        meta = manifest["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        self.writer.check_namespace(namespace, f"pool {pool.id}")
        try:
            self.writer.put(observed.deployment_path(namespace, name), manifest, "Deployment")
            self.writer.put(observed.pdb_path(self.pdb_version, namespace, name),
                            m.pdb_manifest(pool, self.settings, self.pdb_version),
                            "PodDisruptionBudget")
        except ApiError as exc:
            if exc.status == 404:
                raise RuntimeFault(f"pool {pool.id}: namespace {namespace} does not "
                                   f"exist (was Tenant {pool.caller} applied?)") from None
            raise

    def _delete_pool(self, pool: WarmPool) -> bool:
        namespace = m.pool_namespace(pool.id, self.settings)
        name = m.deployment_name(pool.id)
        done = self.writer.delete(observed.deployment_path(namespace, name), "Deployment")
        self.writer.delete(observed.pdb_path(self.pdb_version, namespace, name),
                           "PodDisruptionBudget")
        return done

    # --- waiting --------------------------------------------------------------------------

    def wait_ready(self, pool_id: str, replicas: int, timeout: float) -> None:
        """Poll the Deployment until `replicas` replicas of its current template are ready.
        A rollout past its progress deadline will not get there by waiting: NotReady."""
        namespace = m.pool_namespace(pool_id, self.settings)
        name = m.deployment_name(pool_id)
        path = observed.deployment_path(namespace, name)
        deadline = time.monotonic() + timeout
        while True:
            reason = self._closed_because()
            if reason:
                raise NotReady(f"pool {pool_id}: stopped waiting ({reason}); the old pool "
                               "keeps serving")
            deployment = self.cache.deployment(namespace, name) if self.cache is not None \
                else self.api.get_or_none(path)
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
        """What `status` shows beyond the pools: the schedulable nodes with the room left
        for pools. (No agent: the cluster's controllers and kubelets do its work.)"""
        return {"nodes": [{"name": n.name, "processor": n.processor, "cpu_millis": n.cpu_millis,
                           "memory_bytes": n.memory_bytes, "gpu": n.gpu, "pods": n.pods,
                           "emulated_gpu": False} for n in self.nodes()]}

    def record_apply(self, result: dict[str, Any], source_commit: str | None) -> None:
        """No audit rows of our own: the cluster's objects (and their spec annotations) are
        the record, and the plan journal in the state directory has the rest."""

    def save_roots(self) -> None:
        """Nothing to record: pods get their model and code from the image and env."""

    def close(self) -> None:
        if self.cache is not None:
            self.cache.release()
            self.cache = None
        self.api.close()



