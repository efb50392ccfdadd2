"""Pair desired with live and turn each pair into at most one action. Pure.

Like gitops-engine, desired and live objects are paired by id into aligned
lists where None on one side means create or delete. Each pair yields one
action whose `changes` list every differing diffable field. Display-only
fields (version, visibility, sources, reason, a quota's source) never make an
action by themselves: they describe, they do not run anything.

Pairs are compared with a plain `==` on their diffable fields first and only
unequal ones go through deepdiff, so a no-op plan over 10,000 pools costs
10,000 tuple comparisons, not 10,000 deep diffs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from reconciler.plan.plans import Action, Change, Op, Resource
from reconciler.states import (
    RELOAD_FIELDS,
    SCALE_FIELDS,
    UPDATE_FIELDS,
    DesiredState,
    LiveState,
    Quota,
    ResourceKind,
    Tenant,
    WarmPool,
)

POOL_FIELDS = SCALE_FIELDS + RELOAD_FIELDS + UPDATE_FIELDS
TENANT_FIELDS = ("type",)
QUOTA_FIELDS = ("max_engines", "max_gpus")


@dataclass(frozen=True, slots=True)
class Pair:
    """A desired object and the live object with the same id; either may be None."""

    kind: ResourceKind
    id: str
    desired: Resource | None
    live: Resource | None


def pair(desired: DesiredState, live: LiveState, *, changed_only: bool = False,
         pool_ids: Collection[str] | None = None) -> list[Pair]:
    """Align desired and live by (kind, id); every object appears in exactly one pair.

    `changed_only`: leave out the pairs whose two sides are equal (they make no
    action), without making a Pair for each: a no-op plan of 100,000 pools then
    costs two dicts and one C-level comparison per pool.
    `pool_ids`: the caller knows every other pool is equal on both sides (the
    daemon, which remembers what it applied): pair only these pools."""
    pairs: list[Pair] = []
    sides: tuple[tuple[ResourceKind, Sequence[Resource], Sequence[Resource]], ...] = (
        (ResourceKind.TENANT, desired.tenants, live.tenants),
        (ResourceKind.QUOTA, desired.quotas, live.quotas),
        (ResourceKind.WARM_POOL, desired.pools, live.pools),
    )
    for kind, wanted, seen in sides:
        if changed_only and wanted is seen:
            continue  # the very same objects (the daemon's remembered live state)
        if kind is ResourceKind.WARM_POOL and pool_ids is not None:
            wanted = _only(wanted, pool_ids)
            seen = _only(seen, pool_ids)
        by_id_live: dict[str, Resource] = {obj.id: obj for obj in seen}
        by_id_wanted: dict[str, Resource] = {obj.id: obj for obj in wanted}
        if changed_only:
            ids = _differing(kind, by_id_wanted, by_id_live)
        else:
            ids = sorted(by_id_wanted.keys() | by_id_live.keys())
        for id_ in ids:
            pairs.append(Pair(kind, id_, by_id_wanted.get(id_), by_id_live.get(id_)))
    return pairs


def _only(pools: Sequence[Resource], ids: Collection[str]) -> list[Resource]:
    """The pools with these ids, found by bisection: `pools` is sorted by id (make_plan's
    precondition for `candidates`), so this costs O(len(ids) log len(pools))."""
    out = []
    for id_ in sorted(ids):
        at = bisect_left(pools, id_, key=_ID)
        if at < len(pools) and pools[at].id == id_:
            out.append(pools[at])
    return out


_ID = attrgetter("id")


_FIELDS_OF = {kind: attrgetter(*(f.name for f in fields(cls))) for kind, cls in (
    (ResourceKind.TENANT, Tenant), (ResourceKind.QUOTA, Quota),
    (ResourceKind.WARM_POOL, WarmPool))}


def _differing(kind: ResourceKind, wanted: dict[str, Resource],
               seen: dict[str, Resource]) -> list[str]:
    """Sorted ids whose desired and live objects are not equal (or exist on one side)."""
    values = _FIELDS_OF[kind]  # every field, as the dataclass's == compares, but in C
    out = [id_ for id_, obj in wanted.items()
           if (other := seen.get(id_)) is None or values(obj) != values(other)]
    out += [id_ for id_ in seen if id_ not in wanted]
    out.sort()
    return out


def field_changes(before: Any, after: Any, fields: Sequence[str]) -> tuple[Change, ...]:
    """The differing fields of two objects of one kind (None on one side: every field)."""
    if before is None or after is None:
        return tuple(Change(name, _get(before, name), _get(after, name)) for name in fields)
    old = tuple(getattr(before, name) for name in fields)
    new = tuple(getattr(after, name) for name in fields)
    if old == new:
        return ()
    from deepdiff import DeepDiff  # only unequal pairs pay for importing and running it

    differing = set(DeepDiff(dict(zip(fields, old, strict=True)),
                             dict(zip(fields, new, strict=True))).affected_root_keys)
    return tuple(Change(name, getattr(before, name), getattr(after, name))
                 for name in fields if name in differing)


def _get(obj: Any, name: str) -> Any:
    return None if obj is None else getattr(obj, name)


def pool_action(desired: WarmPool | None, live: WarmPool | None) -> Action | None:
    """One action for a pool pair: update > reload > scale, or create/delete; None when equal.

    Create and delete list only `replicas` as their change (the whole object
    is in `after` / `before`), as SPEC.md's example shows.
    """
    if live is None:
        assert desired is not None
        return Action(Op.CREATE, ResourceKind.WARM_POOL, desired.id, None, desired,
                      desired.reason, (Change("replicas", None, desired.replicas),))
    if desired is None:
        return Action(Op.DELETE, ResourceKind.WARM_POOL, live.id, live, None,
                      _delete_reason(live), (Change("replicas", live.replicas, None),))
    changes = field_changes(live, desired, POOL_FIELDS)
    if not changes:
        return None
    changed = {change.path for change in changes}
    if changed & set(UPDATE_FIELDS):
        op = Op.UPDATE
    elif changed & set(RELOAD_FIELDS):
        op = Op.RELOAD
    else:
        op = Op.SCALE
    return Action(op, ResourceKind.WARM_POOL, desired.id, live, desired, desired.reason, changes)


def _delete_reason(live: WarmPool) -> str:
    was = f" (was: {live.reason})" if live.reason else ""
    return f"no reservation or capacity limit selects this pool any more{was}"


def account_action(kind: ResourceKind, desired: Tenant | Quota | None,
                   live: Tenant | Quota | None) -> Action | None:
    """create / update / delete for a Tenant or a Quota; None when equal."""
    fields = TENANT_FIELDS if kind is ResourceKind.TENANT else QUOTA_FIELDS
    changes = field_changes(live, desired, fields)
    if not changes:
        return None
    if live is None:
        assert desired is not None
        return Action(Op.CREATE, kind, desired.id, None, desired, _account_reason(desired),
                      changes)
    if desired is None:
        return Action(Op.DELETE, kind, live.id, live, None, _gone_reason(live), changes)
    return Action(Op.UPDATE, kind, desired.id, live, desired, _account_reason(desired), changes)


def _account_reason(obj: Tenant | Quota) -> str:
    if isinstance(obj, Quota):
        return f"capacity limit {obj.source}" if obj.source else "account capacity limit"
    return f"account {obj.account} ({obj.type}) calls warm pools"


def _gone_reason(obj: Tenant | Quota) -> str:
    if isinstance(obj, Quota):
        return f"account {obj.account} has no capacity limit any more"
    return f"account {obj.account} calls no warm pools any more"


def actions_for(pairs: Iterable[Pair]) -> list[Action]:
    """The unordered actions of every pair that differs."""
    actions: list[Action] = []
    for item in pairs:
        if item.desired == item.live:
            continue  # the common case of a no-op plan: one C-level comparison
        if item.kind is ResourceKind.WARM_POOL:
            action = pool_action(item.desired, item.live)  # type: ignore[arg-type]
        else:
            action = account_action(item.kind, item.desired, item.live)  # type: ignore[arg-type]
        if action is not None:
            actions.append(action)
    return actions
