"""Leader election against the API server: acquire, renew, takeover, release, races."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.runtimes.kubernetes.client import Api
from reconciler.runtimes.kubernetes.lease import Lease

pytestmark = pytest.mark.slow


def lease_spec(api: Api, name: str) -> dict:
    return api.get(f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{name}")["spec"]


def until(condition, timeout: float = 10.0, every: float = 0.05) -> float:
    """Seconds until condition() is true; AssertionError after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(every)
    return time.monotonic() - started


def test_acquire_renew_and_exclusion(kubeconfig: Path, api: Api) -> None:
    first = Lease("default", "renew-lease", "daemon-a", duration=15, kubeconfig=kubeconfig)
    second = Lease("default", "renew-lease", "daemon-b", duration=15, kubeconfig=kubeconfig)
    assert first.acquire() and first.held
    assert not second.acquire() and not second.held
    created = lease_spec(api, "renew-lease")
    assert created["holderIdentity"] == "daemon-a" and created["leaseDurationSeconds"] == 15
    until(lambda: first.renew() and lease_spec(api, "renew-lease")["renewTime"]
          != created["renewTime"])
    assert first.acquire()  # holding it already: acquire renews
    assert not second.acquire() and second.holder() == "daemon-a"
    assert not second.renew()
    for lease in (first, second):
        lease.close()


def test_takeover_after_the_holder_goes_silent(kubeconfig: Path, api: Api) -> None:
    old = Lease("default", "takeover-lease", "daemon-a", duration=1, kubeconfig=kubeconfig)
    new = Lease("default", "takeover-lease", "daemon-b", duration=1, kubeconfig=kubeconfig)
    assert old.acquire()
    assert not new.acquire()  # just seen: a full duration must pass first
    waited = until(new.acquire, timeout=10)
    assert waited >= 0.9
    spec = lease_spec(api, "takeover-lease")
    assert spec["holderIdentity"] == "daemon-b" and spec["leaseTransitions"] == 1
    assert not old.renew() and not old.held  # the old holder learns it lost the Lease
    for lease in (old, new):
        lease.close()


def test_a_live_holder_keeps_the_lease(kubeconfig: Path) -> None:
    holder = Lease("default", "busy-lease", "daemon-a", duration=1, kubeconfig=kubeconfig)
    other = Lease("default", "busy-lease", "daemon-b", duration=1, kubeconfig=kubeconfig)
    assert holder.acquire()
    deadline = time.monotonic() + 1.8  # well past one duration, renewing all along
    while time.monotonic() < deadline:
        assert holder.renew()
        assert not other.acquire()
        time.sleep(0.2)
    for lease in (holder, other):
        lease.close()


def test_release_hands_over_at_once(kubeconfig: Path) -> None:
    first = Lease("default", "release-lease", "daemon-a", duration=30, kubeconfig=kubeconfig)
    second = Lease("default", "release-lease", "daemon-b", duration=30, kubeconfig=kubeconfig)
    assert first.acquire()
    first.release()
    assert not first.held and first.holder() is None
    assert second.acquire()  # no holder: no need to wait out 30 s
    for lease in (first, second):
        lease.close()


def test_a_stale_write_loses_the_race(kubeconfig: Path, api: Api) -> None:
    lease = Lease("default", "race-lease", "daemon-a", duration=15, kubeconfig=kubeconfig)
    assert lease.acquire()
    stale = api.get(lease.path)
    lease.renew()  # moves the resourceVersion on
    assert not lease._write(stale, renew_only=False)  # the guarded replace refuses
    lease.close()
