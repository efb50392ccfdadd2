"""Leader election with a coordination.k8s.io/v1 Lease: one active daemon per cluster.

The rules of client-go's leaderelection, kept small:
- acquire(): create the Lease if there is none; take it over when its holder
  has not renewed it for `duration` seconds; otherwise report False.
- renew(): the holder writes a fresh renewTime; False when someone else holds
  the Lease now (this process must stop reconciling).
- release(): on shutdown, give the Lease up so another daemon takes over at once.
- ensure_namespace(): make the Lease's namespace (labelled managed-by reconciler) if
  it is missing; an existing one is used as it is.

Every write is a replace guarded by the resourceVersion just read, so two
candidates racing for an expired Lease cannot both win: the loser gets a 409
and False.

Expiry is judged as client-go does, by this process's own monotonic clock
since it last saw the Lease *change*, not by comparing the holder's
renewTime with our wall clock: clocks of two machines may disagree. So a
candidate that has just started waits one full `duration` before taking over
a silent Lease.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.runtimes.kubernetes.client import REQUEST_TIMEOUT, Api, ApiError, connect
from reconciler.runtimes.kubernetes.manifests import MANAGED_BY, MANAGER

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def now_micro() -> str:
    return datetime.now(UTC).strftime(MICRO_TIME)


class Lease:
    def __init__(self, namespace: str, name: str, identity: str, duration: int = 15, *,
                 kubeconfig: Path | None = None, context: str | None = None,
                 api_client: Any = None) -> None:
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration = duration
        # A request may not outlast the time left to renew: a hung call must not keep a
        # holder believing it leads after its Lease has expired for everyone else. Nor is
        # it retried here: the caller tries again on its own schedule.
        self.api = Api(api_client if api_client is not None else connect(kubeconfig, context),
                       timeout=min(REQUEST_TIMEOUT, max(1.0, duration / 3)), attempts=1)
        self._seen: tuple[Any, ...] | None = None  # the last record observed ...
        self._seen_at = 0.0  # ... and when (monotonic) it was first seen that way
        self.held = False

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def acquire(self) -> bool:
        """True when this identity holds the Lease now (created, taken over or renewed)."""
        lease = self.api.get_or_none(self.path)
        if lease is None:
            self.held = self._create()
            return self.held
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") == self.identity:
            self.held = self._write(lease, renew_only=True)
            return self.held
        self._observe(spec)
        if spec.get("holderIdentity") and not self._expired(spec):
            self.held = False
            return False
        self.held = self._write(lease, renew_only=False)
        return self.held

    def renew(self) -> bool:
        """Write a fresh renewTime; False (and `held` False) when the Lease is someone else's."""
        lease = self.api.get_or_none(self.path)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            self.held = False
            return False
        self.held = self._write(lease, renew_only=True)
        return self.held

    def release(self) -> None:
        """Give the Lease up if held, so a standby takes over without waiting it out."""
        lease = self.api.get_or_none(self.path)
        self.held = False
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"].update(holderIdentity=None, leaseDurationSeconds=1, renewTime=now_micro())
        try:
            self.api.request("PUT", self.path, body=lease)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    def ensure_namespace(self) -> None:
        """Create the Lease's namespace when it is missing, labelled as ours."""
        path = f"/api/v1/namespaces/{self.namespace}"
        if self.api.get_or_none(path) is not None:
            return
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": self.namespace, "labels": {MANAGED_BY: MANAGER}}}
        try:
            self.api.request("POST", "/api/v1/namespaces", body=body)
        except ApiError as exc:
            if exc.status != 409:  # made meanwhile by another candidate: fine
                raise

    def holder(self) -> str | None:
        lease = self.api.get_or_none(self.path)
        return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")

    def close(self) -> None:
        self.api.close()

    # --- internals ------------------------------------------------------------------------

    def _observe(self, spec: dict[str, Any]) -> None:
        record = (spec.get("holderIdentity"), spec.get("renewTime"),
                  spec.get("leaseTransitions"), spec.get("leaseDurationSeconds"))
        if record != self._seen:
            self._seen, self._seen_at = record, time.monotonic()

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = spec.get("leaseDurationSeconds") or self.duration
        return time.monotonic() - self._seen_at >= duration

    def _create(self) -> bool:
        stamp = now_micro()
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration,
                         "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}}
        try:
            self.api.request("POST", self.path.rsplit("/", 1)[0], body=body)
            return True
        except ApiError as exc:
            if exc.status == 409:  # another candidate created it first
                return False
            raise

    def _write(self, lease: dict[str, Any], *, renew_only: bool) -> bool:
        """Replace the Lease read a moment ago (its resourceVersion guards the write)."""
        spec = lease.setdefault("spec", {})
        stamp = now_micro()
        if not renew_only:
            spec.update(holderIdentity=self.identity, acquireTime=stamp,
                        leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1)
        spec.update(renewTime=stamp, leaseDurationSeconds=self.duration)
        try:
            self.api.request("PUT", self.path, body=lease)
            return True
        except ApiError as exc:
            if exc.status in (404, 409):  # changed or gone since we read it: not ours
                return False
            raise
