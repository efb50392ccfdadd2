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
from operator import attrgetter, itemgetter
from typing import Any

from reconciler.errors import StalePlan
from reconciler.plan.plans import Plan, Resource
from reconciler.states import DesiredState, LiveState, Quota, ResourceKind, Tenant, WarmPool

# not fingerprinted: code_digest (digests of local code), drift (live pools only)
_POOL_FIELDS = tuple(f.name for f in fields(WarmPool) if f.name not in ("code_digest", "drift"))
_QUOTA_FIELDS = tuple(f.name for f in fields(Quota))
_TENANT_FIELDS = tuple(f.name for f in fields(Tenant))


def canonical(desired: DesiredState) -> dict[str, Any]:
    """The desired state as rows of field values in declaration order, sorted by id
    (the first field of every kind). Tuples encode as JSON arrays."""
    def rows(objs: Any, names: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return sorted(map(attrgetter(*names), objs), key=itemgetter(0))

    data = {
        "tenants": rows(desired.tenants, _TENANT_FIELDS),
        "quotas": rows(desired.quotas, _QUOTA_FIELDS),
        "pools": rows(desired.pools, _POOL_FIELDS),
    }
    code = {pool.id: pool.code_digest for pool in desired.pools if pool.code_digest}
    if code:  # only then: fingerprints of states without code digests stay what they were
        data["code"] = sorted(code.items())
    return data


def fingerprint(desired: DesiredState, live_revision: str) -> str:
    """Stable hash of the desired state and the observed live revision."""
    body = json.dumps([canonical(desired), live_revision], sort_keys=True,
                      separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


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
