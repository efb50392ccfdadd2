"""Plan fingerprints and the staleness check of `apply --plan FILE`. Pure.

The fingerprint hashes the desired state together with the live revision the
plan was computed against. Each pool's canonical row (its field values in
declaration order, as compact JSON) is hashed on its own, and the fingerprint
is the hash of the tenants, the quotas and the live revision (canonical,
sorted JSON) followed by the pools' row hashes in id order: the daemon keeps
the row hashes of unchanged pools between plans, so a plan over 100,000
pools hashes 3 MB, not 30 MB of JSON. A runtime changes its revision whenever
anything it holds changes, so a saved plan is fresh exactly while the
revision it recorded is still the live one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import fields
from itertools import islice
from operator import attrgetter, itemgetter, le, methodcaller
from typing import Any

from reconciler.errors import StalePlan
from reconciler.plan.plans import Plan, Resource
from reconciler.states import DesiredState, LiveState, Quota, ResourceKind, Tenant, WarmPool

# not fingerprinted: code_digest (digests of local code), drift (live pools only)
_POOL_FIELDS = tuple(f.name for f in fields(WarmPool)
                     if f.name not in ("code_digest", "drift", "drift_rolls"))
_QUOTA_FIELDS = tuple(f.name for f in fields(Quota))
_TENANT_FIELDS = tuple(f.name for f in fields(Tenant))
_ROW = attrgetter(*_POOL_FIELDS)
_ID = attrgetter("id")


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


def fingerprint(desired: DesiredState, live_revision: str,
                rows: RowCache | None = None) -> str:
    """Stable hash of the desired state and the observed live revision.

    `rows`: the row hashes of pools kept between calls (the daemon's RowCache), so
    that a desired state that shares most of its pool objects with the last one
    hashes only its new pools; its pools must be sorted by id (as compile_config
    makes them). Same value either way."""
    if rows is not None:
        digests, accounts = rows.digests(desired.pools), rows.accounts(desired)
    else:
        digests, accounts = _digests(_sorted_pools(desired.pools)), _dumps(_accounts(desired))
    # the JSON of [accounts, live_revision], the accounts' part encoded once
    head = f"[{accounts},{_dumps(live_revision)}]"
    digest = hashlib.sha256(head.encode() + b"\0")
    digest.update(b"".join(digests))
    return "sha256:" + digest.hexdigest()


def _sorted_pools(pools: tuple[WarmPool, ...]) -> tuple[WarmPool, ...]:
    ids = list(map(_ID, pools))
    if all(map(le, ids, islice(ids, 1, None))):  # compiled states come sorted
        return pools
    return tuple(sorted(pools, key=_ID))


def _accounts(desired: DesiredState) -> dict[str, Any]:
    rows = canonical(DesiredState(tenants=desired.tenants, quotas=desired.quotas))
    return {"quotas": rows["quotas"], "tenants": rows["tenants"]}


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def _digests(pools: Iterable[WarmPool]) -> list[bytes]:
    """sha256 of each pool's row as compact JSON: a chain of C-level calls (one encoder
    for all rows), ~3 microseconds a pool."""
    texts = map(str.encode, map(_dumps, map(_ROW, pools)))
    return list(map(methodcaller("digest"), map(hashlib.sha256, texts)))


class RowCache:
    """Each pool's row hash, reused while the pool is the very same object.

    Hashes are found by object identity with C-level calls (map, dict.get), so a
    desired state that shares all but a few pool objects with the last one costs
    one lookup per pool in C. The cache holds a reference to every pool it has a
    hash for, so an id() is never reused while it is a key."""

    def __init__(self) -> None:
        self._digests: dict[int, bytes] = {}
        self._alive: dict[int, WarmPool] = {}
        self._accounts: tuple[Any, Any, str] | None = None

    def accounts(self, desired: DesiredState) -> str:
        """The tenants' and quotas' rows as JSON, kept while they are the same tuples."""
        known = self._accounts
        if known is None or known[0] is not desired.tenants or known[1] is not desired.quotas:
            known = self._accounts = (desired.tenants, desired.quotas,
                                      _dumps(_accounts(desired)))
        return known[2]

    def digests(self, pools: tuple[WarmPool, ...]) -> list[bytes]:
        keys = list(map(id, pools))
        found: list[bytes | None] = list(map(self._digests.get, keys))
        at = -1
        for _ in range(found.count(None)):
            at = found.index(None, at + 1)
            found[at] = self._digests[keys[at]] = _digests([pools[at]])[0]
            self._alive[keys[at]] = pools[at]
        out: list[bytes] = found  # type: ignore[assignment]  # no None is left
        if len(self._digests) > len(pools) + 1000:  # pools gone since: keep the current ones
            self._digests = dict(zip(keys, out, strict=True))
            self._alive = dict(zip(keys, pools, strict=True))
        return out


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
