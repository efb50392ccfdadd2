"""Writing objects the reconciler owns, and never anyone else's, without a read first.

Every write is one request in the common case:
- create: server-side apply with `metadata.resourceVersion: "1"` (a version no
  live object has). The API server creates an absent object and ignores
  the version; an object that already exists fails the precondition (409)
  and is left untouched.
- update (the object was observed): server-side apply with the observed
  `metadata.uid`. An object deleted meanwhile fails with 409, one replaced
  by someone else's of the same name with 422: neither is touched.
- delete: with the observed uid as precondition.
Only when a precondition fails is the object read (GET) to decide: ours
(managed-by and this instance, or no instance label: made before instances
existed) is written with its uid; someone else's is refused with a
non-retryable fault that names it; one in a namespace being deleted waits
(Pending, reported deferred).

The Index (observed.py) is what observe() saw, updated by every write, so
later actions of the same run know what this run made or deleted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from reconciler.config.model import KubernetesSettings
from reconciler.errors import RuntimeFault
from reconciler.runtimes.base import Pending
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes.client import Api, ApiError
from reconciler.runtimes.kubernetes.observed import Index, Namespace

ABSENT_VERSION = "1"  # no live object has it: "create, or fail if it exists"
TERMINATING = "being terminated"  # in the API server's refusal to create in such a namespace
Written = Callable[[str, dict[str, Any] | None], None]  # (path, object or None when gone)


def owner_problem(obj: dict[str, Any], settings: KubernetesSettings) -> str | None:
    """None when `obj` is this instance's (or a reconciler's from before instance labels);
    else whose it is, in words."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(m.MANAGED_BY) != m.MANAGER:
        return f"is not managed by reconciler (no label {m.SELECTOR})"
    instance = labels.get(m.INSTANCE_LABEL)
    if instance is not None and instance != m.instance_label(settings):
        return (f"belongs to another reconciler instance ({m.INSTANCE_LABEL}={instance}, "
                f"this one is {m.instance_label(settings)})")
    return None


class Writer:
    def __init__(self, api: Api, settings: KubernetesSettings, index: Callable[[], Index],
                 written: Written | None = None) -> None:
        self.api, self.settings = api, settings
        self._index = index
        self._lock = threading.Lock()
        self._written = written

    # --- the index ------------------------------------------------------------------------

    def uid(self, path: str) -> str | None:
        with self._lock:
            return self._index().uids.get(path)

    def namespace(self, name: str) -> Namespace | None:
        with self._lock:
            return self._index().namespaces.get(name)

    def remember(self, path: str, obj: dict[str, Any] | None, *, tenant: bool | None = None
                 ) -> None:
        """Record what a write left at `path` (None: nothing)."""
        with self._lock:
            index = self._index()
            meta = (obj or {}).get("metadata") or {}
            if obj is None:
                index.uids.pop(path, None)
            else:
                index.uids[path] = meta.get("uid", "")
            if path.count("/") == 4 and path.startswith("/api/v1/namespaces/"):
                name = path.rsplit("/", 1)[1]
                known = index.namespaces.get(name)
                if obj is None:
                    index.namespaces.pop(name, None)
                else:
                    index.namespaces[name] = Namespace(
                        meta.get("uid", ""), bool(meta.get("deletionTimestamp")),
                        tenant if tenant is not None else bool(known and known.tenant))
        if self._written is not None:
            self._written(path, obj)

    def check_namespace(self, name: str, what: str) -> None:
        """Pending when the namespace is known to be on its way out."""
        known = self.namespace(name)
        if known is not None and known.terminating:
            raise Pending(f"{what}: namespace {name} is being deleted; waiting for it to go "
                          "(the next pass writes it)")

    # --- writes ---------------------------------------------------------------------------

    def put(self, path: str, manifest: dict[str, Any], kind: str) -> dict[str, Any]:
        """Create or update an object of ours at `path` (module docstring); the object."""
        uid = self.uid(path)
        try:
            return self._apply(path, manifest, uid)
        except ApiError as exc:
            if exc.status == 403 and TERMINATING in str(exc):
                raise Pending(f"{kind} {_name(path)}: its namespace is being deleted; "
                              "waiting for it to go (the next pass writes it)") from None
            if not _precondition(exc):
                raise
        return self._resolve(path, manifest, kind)

    def _apply(self, path: str, manifest: dict[str, Any], uid: str | None) -> dict[str, Any]:
        meta = dict(manifest["metadata"])
        if uid:
            meta["uid"] = uid
        else:
            meta["resourceVersion"] = ABSENT_VERSION
        # the index needs only metadata; caches (write-through) the whole object
        answer = self.api.apply(path, {**manifest, "metadata": meta},
                                metadata_only=self._written is None)
        self.remember(path, answer.body, tenant=_is_tenant(manifest))
        return answer.body

    def _resolve(self, path: str, manifest: dict[str, Any], kind: str) -> dict[str, Any]:
        """A precondition failed: read the object, then write it if it is ours."""
        found = self.existing(path, kind)
        try:
            return self._apply(path, manifest, found["metadata"]["uid"] if found else None)
        except ApiError as exc:
            if _precondition(exc):  # changed again in between: let the executor retry
                raise RuntimeFault(f"{kind} {_name(path)} changed while it was written; "
                                   "will try again", retryable=True) from None
            raise

    def existing(self, path: str, kind: str) -> dict[str, Any] | None:
        """The object at `path` if it exists and is ours; None if absent; Pending if it is
        being deleted; a non-retryable fault if it is someone else's (never changed or
        deleted)."""
        obj = self.api.get_or_none(path)
        if obj is None:
            self.remember(path, None)
            return None
        problem = owner_problem(obj, self.settings)
        if problem is not None:
            raise RuntimeFault(f"{kind} {_name(path)} exists and {problem}; refusing to change "
                               "or delete it. Rename or remove it, or label it to hand it "
                               "over.")
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self.remember(path, obj)
            raise Pending(f"{kind} {_name(path)} is being deleted; waiting for it to go (the "
                          "next pass makes it again)")
        namespace = meta.get("namespace")
        if namespace:  # an update would succeed in a namespace on its way out: wait instead
            if self.namespace(namespace) is None:
                found = self.api.get_or_none(m_path(namespace))
                if found is not None and owner_problem(found, self.settings) is None:
                    self.remember(m_path(namespace), found)
                elif found is not None and (found.get("metadata") or {}).get(
                        "deletionTimestamp"):
                    raise Pending(f"{kind} {_name(path)}: namespace {namespace} is being "
                                  "deleted; waiting for it to go")
            self.check_namespace(namespace, f"{kind} {_name(path)}")
        return obj

    def delete(self, path: str, kind: str) -> bool:
        """Delete our object at `path`; False when there was nothing of ours to delete
        (already gone, or replaced by an object that is not the one observed)."""
        uid = self.uid(path)
        if not uid:
            found = self.existing(path, kind) if kind != "Namespace" else \
                self.existing_namespace(path)
            if found is None:
                return False
            uid = found["metadata"]["uid"]
        try:
            answer = self.api.delete(path, uid)
        except ApiError as exc:
            if exc.status == 409:  # the uid precondition: another object holds the name now
                self.remember(path, None)
                return False
            raise
        if answer is None:
            self.remember(path, None)
            return False
        self.remember(path, answer if answer.get("kind") == kind and
                      (answer.get("metadata") or {}).get("deletionTimestamp") else None)
        return True

    def existing_namespace(self, path: str) -> dict[str, Any] | None:
        try:
            return self.existing(path, "Namespace")
        except Pending:
            return None  # already on its way out: nothing to delete

    def ensure_namespace(self, account: str) -> None:
        """The namespace of a quota whose account calls nothing: made without a Tenant's
        mark (a POST, so a later apply of the Tenant never strips fields it did not set)."""
        manifest = m.namespace_manifest(account, self.settings)
        name = manifest["metadata"]["name"]
        self.check_namespace(name, f"Quota {account}")
        if self.namespace(name) is not None:
            return
        try:
            created = self.api.request("POST", "/api/v1/namespaces", body=manifest,
                                       query={"fieldManager": "reconciler"})
        except ApiError as exc:
            if exc.status != 409:
                raise
            found = self.existing(m_path(name), "Namespace")  # foreign: refused; gone: retry
            if found is None:
                raise RuntimeFault(f"namespace {name} vanished while it was made; will try "
                                   "again", retryable=True) from None
            self.remember(m_path(name), found)
            return
        self.remember(m_path(name), created, tenant=False)

    def unmark_tenant(self, name: str) -> None:
        """The namespace stays, no longer a Tenant's (observe reports no Tenant for it)."""
        answer = self.api.request("PATCH", m_path(name), content_type="application/"
                                  "merge-patch+json",
                                  body={"metadata": {"annotations": {m.SPEC_ANNOTATION: None}}})
        self.remember(m_path(name), answer, tenant=False)


def _precondition(exc: ApiError) -> bool:
    """A failed precondition: 409 (exists, or the observed uid is gone), or 422 on
    metadata.uid (another object has the name now)."""
    return exc.status == 409 or (exc.status == 422 and "metadata.uid" in str(exc))


def m_path(name: str) -> str:
    return f"/api/v1/namespaces/{name}"


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _is_tenant(manifest: dict[str, Any]) -> bool | None:
    if manifest.get("kind") != "Namespace":
        return None
    return m.SPEC_ANNOTATION in (manifest["metadata"].get("annotations") or {})
