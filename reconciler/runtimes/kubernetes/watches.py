"""Informer caches for the daemon: list once, then watch, so a no-op pass asks nothing.

One Informer per kind, as client-go's reflector: a paged list gives the
objects and a resourceVersion; a watch from there keeps them current
(ADDED, MODIFIED, DELETED; BOOKMARKs move the version on). The watch is
re-opened where it stopped when the server ends it (timeoutSeconds), the
whole kind is listed again on 410 Gone (the version is too old) and every
`resync` seconds. Writes of this process are put into the caches at once
from the API server's answers (write-through), so the pass after an apply
does not plan the same writes again while the watch events are on their way;
an event older than what a cache holds is ignored.

A cache that cannot list or watch (the API server is down) is unhealthy:
reads fall back to plain lists, which fail loudly, instead of answering from
stale data. Caches are shared by every KubernetesRuntime of the process with
the same cluster, instance and resync (`shared`): the daemon opens a runtime
per pass, and the caches outlive them. Threads are daemon threads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from reconciler.backoff import Backoff
from reconciler.config.model import KubernetesSettings
from reconciler.runtimes.kubernetes import manifests as m
from reconciler.runtimes.kubernetes import nodes as k8s_nodes
from reconciler.runtimes.kubernetes.client import METADATA_ONE, Api, ApiError, Breaker
from reconciler.runtimes.kubernetes.observed import Lists

log = logging.getLogger("reconciler.runtimes.kubernetes.watch")
WATCH_SECONDS = 300  # the server ends each watch after this; it is re-opened at once
SYNC_TIMEOUT = 120.0  # seconds to wait for a first list
Key = tuple[str, str]  # (namespace, name)


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _version(obj: dict[str, Any]) -> int | None:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


class Informer:
    def __init__(self, api: Api, path: str, *, labels: str | None = None,
                 fields: str | None = None, metadata_only: bool = False,
                 resync: float = 300.0) -> None:
        self.api, self.path = api, path
        self.labels, self.fields, self.metadata_only = labels, fields, metadata_only
        self.resync = resync
        self._store: dict[Key, dict[str, Any]] = {}
        self._gone: dict[Key, int] = {}  # deleted by this process: older events are stale
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self.healthy = False
        self.error: str | None = None
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"watch {path} {labels or ''}")
        self._thread.start()

    # --- reads ----------------------------------------------------------------------------

    def items(self) -> list[dict[str, Any]] | None:
        """Every object, or None when the cache cannot be trusted now."""
        self._synced.wait(SYNC_TIMEOUT)
        with self._lock:
            return list(self._store.values()) if self.healthy else None

    def get(self, key: Key) -> tuple[bool, dict[str, Any] | None]:
        """(trusted, object or None)."""
        self._synced.wait(SYNC_TIMEOUT)
        with self._lock:
            return self.healthy, self._store.get(key)

    # --- write-through --------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> None:
        key = _key(obj)
        with self._lock:
            if self._fresher(key, obj):
                self._store[key] = obj
                self._gone.pop(key, None)

    def drop(self, key: Key) -> None:
        with self._lock:
            old = self._store.pop(key, None)
            version = _version(old) if old else None
            if version is not None:
                self._gone[key] = version

    def _fresher(self, key: Key, obj: dict[str, Any]) -> bool:
        new = _version(obj)
        old = self._store.get(key)
        old_version = _version(old) if old is not None else self._gone.get(key)
        return new is None or old_version is None or new >= old_version

    # --- the loop -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self.healthy = False
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001 - best effort: the thread is a daemon anyway
                pass

    def _run(self) -> None:
        backoff = Backoff(0.5, 30.0, jitter=0.3)
        while not self._stopping.is_set():
            try:
                version = self._list()
                backoff.reset()
                until = time.monotonic() + self.resync
                while not self._stopping.is_set() and time.monotonic() < until:
                    version = self._watch(version, until)
            except Gone:
                continue
            except Exception as exc:  # noqa: BLE001 - any failure: unhealthy, retry later
                with self._lock:
                    self.healthy, self.error = False, str(exc)
                self._synced.set()
                if not self._stopping.is_set():
                    log.warning("watch of %s failed (%s); listing again", self.path, exc)
                self._stopping.wait(backoff.next())

    def _list(self) -> str:
        listing = self.api.list(self.path, labels=self.labels, fields=self.fields,
                                metadata_only=self.metadata_only)
        with self._lock:
            self._store = {_key(o): o for o in listing.items}
            self._gone.clear()
            self.healthy, self.error = True, None
        self._synced.set()
        return listing.resource_version

    def _watch(self, version: str, until: float) -> str:
        seconds = max(1, min(WATCH_SECONDS, int(until - time.monotonic()) + 1))
        query = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(seconds)}
        if self.labels:
            query["labelSelector"] = self.labels
        if self.fields:
            query["fieldSelector"] = self.fields
        for event in self._events(query, seconds):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise ApiError(f"watch {self.path}: {obj.get('message')}", obj.get("code") or 0)
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if kind == "BOOKMARK":
                continue
            key = _key(obj)
            with self._lock:
                if kind == "DELETED":
                    self._store.pop(key, None)
                    self._gone.pop(key, None)
                elif self._fresher(key, obj):
                    self._store[key] = obj
        return version

    def _events(self, query: dict[str, str], seconds: int) -> Iterator[dict[str, Any]]:
        client = self.api.client
        accept = METADATA_ONE if self.metadata_only else "application/json"
        args = client.param_serialize("GET", self.path, query_params=list(query.items()),
                                      header_params={"Accept": accept},
                                      auth_settings=["BearerToken"])
        response = client.call_api(*args, _request_timeout=(10, seconds + 30))
        if response.status == 410:
            raise Gone()
        if not 200 <= response.status < 300:
            raise ApiError(f"watch {self.path}: {response.status} {response.reason}",
                           response.status)
        raw = response.response
        self._response = raw
        try:
            pending = b""
            for chunk in raw.stream(None):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            self._response = None
            raw.close()  # not back to the pool: it may end mid-stream


class Caches:
    """The informers of one cluster and instance."""

    def __init__(self, api: Api, settings: KubernetesSettings, resync: float) -> None:
        from reconciler.runtimes.kubernetes.runtime import (
            LISTS,
            discover_pdb_version,
            other_instances_selector,
        )

        self.api = api
        self._pdb = discover_pdb_version(api)
        labels = m.selector(settings)

        def make(path: str, **options: Any) -> Informer:
            return Informer(api, path, resync=resync, **options)

        self.kinds = {kind: make(path.format(pdb=self._pdb), labels=labels,
                                 metadata_only=kind == "namespaces")
                      for kind, path in LISTS.items()}
        if settings.instance is None:
            self.kinds["others"] = make(LISTS["namespaces"], metadata_only=True,
                                        labels=other_instances_selector(settings))
        self.kinds["nodes"] = make("/api/v1/nodes")
        self.kinds["foreign pods"] = make("/api/v1/pods", fields=k8s_nodes.FOREIGN_POD_FIELDS,
                                          labels=k8s_nodes.foreign_pod_labels(settings))
        self.users = 0  # open runtimes using these caches

    def release(self) -> None:
        with _SHARED_LOCK:
            self.users = max(0, self.users - 1)

    def pdb_version(self) -> str:
        return self._pdb

    def lists(self) -> Lists | None:
        found = {kind: informer.items() for kind, informer in self.kinds.items()}
        if any(v is None for k, v in found.items() if k not in ("nodes", "foreign pods")):
            return None
        return Lists(found["namespaces"] or [], found["quotas"] or [],
                     found["deployments"] or [], found["pods"] or [], found["pdbs"] or [],
                     found.get("others"))

    def node_lists(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        items, pods = self.kinds["nodes"].items(), self.kinds["foreign pods"].items()
        return None if items is None or pods is None else (items, pods)

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        trusted, obj = self.kinds["deployments"].get((namespace, name))
        if trusted:
            return obj
        from reconciler.runtimes.kubernetes.observed import deployment_path

        return self.api.get_or_none(deployment_path(namespace, name))

    def written(self, path: str, obj: dict[str, Any] | None) -> None:
        """Write-through: what a write of this process left at `path` (None: nothing)."""
        parts = path.strip("/").split("/")
        kind = {"namespaces": "namespaces", "resourcequotas": "quotas",
                "deployments": "deployments", "poddisruptionbudgets": "pdbs"}.get(
            parts[-2] if len(parts) >= 2 else "")
        if kind is None:
            return
        informer = self.kinds[kind]
        key = ("", parts[-1]) if kind == "namespaces" else (parts[-3], parts[-1])
        if obj is None:
            informer.drop(key)
        else:
            informer.put(obj)

    def stop(self) -> None:
        for informer in self.kinds.values():
            informer.stop()
        self.api.close()


_SHARED: dict[tuple[Any, ...], Caches] = {}
_SHARED_LOCK = threading.Lock()


def shared(kubeconfig: Path | None, context: str | None, settings: KubernetesSettings,
           resync: float, make_client: Callable[[], Any]) -> Caches:
    """The caches of this cluster and instance, started on first use and kept while the
    process runs, for the runtimes opened after (the caller releases its use with
    Caches.release). Starting another instance's caches on the same cluster stops the
    ones no open runtime uses: the settings changed, that instance is not read any more."""
    key = (str(kubeconfig) if kubeconfig else None, context, m.instance_label(settings),
           settings.instance is None, resync)
    with _SHARED_LOCK:
        caches = _SHARED.get(key)
        if caches is None:
            for other in [k for k, c in _SHARED.items() if k[:2] == key[:2] and not c.users]:
                _SHARED.pop(other).stop()
            # no circuit breaker: an informer outlives outages, backing off between lists
            caches = Caches(Api(make_client(), attempts=3, breaker=Breaker(threshold=2**62)),
                            settings, resync)
            _SHARED[key] = caches
        caches.users += 1
        return caches


def stop_all() -> None:
    """Stop every shared cache (tests; the daemon's threads end with the process)."""
    with _SHARED_LOCK:
        for caches in _SHARED.values():
            caches.stop()
        _SHARED.clear()
