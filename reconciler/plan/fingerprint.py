"""Plan fingerprints and the staleness check of `apply --plan FILE`. Pure.

The fingerprint hashes the desired state (canonical, sorted JSON) together
with the live revision the plan was computed against. A runtime changes its
revision whenever anything it holds changes, so a saved plan is fresh
exactly while the revision it recorded is still the live one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from itertools import islice
from operator import attrgetter, itemgetter, le
from typing import Any

from reconciler.errors import StalePlan
from reconciler.plan.plans import Plan, Resource
from reconciler.states import DesiredState, LiveState, Quota, ResourceKind, Tenant, WarmPool

_POOL_FIELDS = tuple(f.name for f in fields(WarmPool))
_QUOTA_FIELDS = tuple(f.name for f in fields(Quota))
_TENANT_FIELDS = tuple(f.name for f in fields(Tenant))


def canonical(desired: DesiredState) -> dict[str, Any]:
    """The desired state as rows of field values in declaration order, sorted by id
    (the first field of every kind). Tuples encode as JSON arrays."""
    def rows(objs: Any, names: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return sorted(map(attrgetter(*names), objs), key=itemgetter(0))

    return {
        "tenants": rows(desired.tenants, _TENANT_FIELDS),
        "quotas": rows(desired.quotas, _QUOTA_FIELDS),
        "pools": rows(desired.pools, _POOL_FIELDS),
    }


def fingerprint(desired: DesiredState, live_revision: str,
                rows: RowCache | None = None) -> str:
    """Stable hash of the desired state and the observed live revision.

    `rows`: a cache of each pool's JSON row kept between calls (the daemon's), so
    that a desired state that shares most of its pools with the last one costs one
    hash over cached text, not a JSON encoding of every pool. Same value either way."""
    if rows is not None:
        return rows.fingerprint(desired, live_revision)
    body = json.dumps([canonical(desired), live_revision], sort_keys=True,
                      separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


_ROW = attrgetter(*_POOL_FIELDS)
_ID = attrgetter("id")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class RowCache:
    """Each pool's row of `canonical` as JSON text, by pool id, reused while the pool
    is the very same object. The hash streams exactly the text `fingerprint` encodes:
    [{"pools":[ROW,...],"quotas":[...],"tenants":[...]},"REVISION"]."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[WarmPool, bytes]] = {}

    def fingerprint(self, desired: DesiredState, live_revision: str) -> str:
        body = canonical(DesiredState(desired.tenants, desired.quotas, ()))
        pools = desired.pools
        ids = list(map(_ID, pools))
        if not all(map(le, ids, islice(ids, 1, None))):  # compiled states come sorted
            pools = tuple(sorted(pools, key=_ID))
        cached = self._rows
        rows: list[bytes] = []
        for pool in pools:
            known = cached.get(pool.id)
            if known is None or known[0] is not pool:
                known = cached[pool.id] = (pool, _dumps(_ROW(pool)).encode())
            rows.append(known[1])
        if len(cached) > len(pools):  # pools gone since: keep only the current ones
            self._rows = {pool.id: cached[pool.id] for pool in pools}
        digest = hashlib.sha256(b'[{"pools":[')
        digest.update(b",".join(rows))
        digest.update(b'],"quotas":' + _dumps(body["quotas"]).encode()
                      + b',"tenants":' + _dumps(body["tenants"]).encode() + b"},"
                      + _dumps(live_revision).encode() + b"]")
        return "sha256:" + digest.hexdigest()


def check_fresh(plan: Plan, live: LiveState) -> None:
    """Raise StalePlan, saying what changed, when `live` no longer matches the plan."""
    if live.revision == plan.live_revision:
        return
    changes = _what_changed(plan, live)
    detail = "; ".join(changes[:5])
    if len(changes) > 5:
        detail += f"; and {len(changes) - 5} more"
    if not detail:
        detail = f"revision {plan.live_revision} -> {live.revision}"
    raise StalePlan(f"plan is stale: the live state changed since it was made ({detail}); "
                    f"run `reconciler plan` again")


def _what_changed(plan: Plan, live: LiveState) -> list[str]:
    now: dict[tuple[ResourceKind, str], Resource] = {}
    for kind, objs in ((ResourceKind.TENANT, live.tenants), (ResourceKind.QUOTA, live.quotas),
                       (ResourceKind.WARM_POOL, live.pools)):
        for obj in objs:
            now[(kind, obj.id)] = obj
    changes = []
    for action in plan.actions:
        label = {ResourceKind.WARM_POOL: "pool", ResourceKind.TENANT: "tenant",
                 ResourceKind.QUOTA: "quota"}[action.kind]
        current = now.get((action.kind, action.id))
        if action.before is None and current is not None:
            changes.append(f"{label} {action.id}: created since the plan")
        elif action.before is not None and current is None:
            changes.append(f"{label} {action.id}: deleted since the plan")
        elif action.before is not None and current is not None and action.before != current:
            changes.append(f"{label} {action.id}: {_diff(action.before, current)}")
    return changes


def _diff(before: Resource, after: Resource) -> str:
    names = [f.name for f in fields(before)]
    parts = [f"{name} {getattr(before, name)} -> {getattr(after, name)}"
             for name in names if getattr(before, name) != getattr(after, name)]
    return ", ".join(parts) or "changed"
