"""The daemon's narrow path: a commit that changes only reservations.

When every document a commit changes (before and after) is a Reservation that
validates, resolves and is allowed, only those files are read again, only the
pools their reservations count into are recounted and recompiled, only the
limits of those callers and versions are checked, and the plan compares only
those pools with the live state. `Memory` is what the last pass left to make
that possible; reconciler.daemon.incremental decides when this path applies.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from reconciler.config import capacity, loader
from reconciler.config.model import CapacityLimit, Config, PoolCount, PoolKey, Reservation
from reconciler.config.resolve import aggregate_pools, limit_target
from reconciler.daemon.gittree import Tree
from reconciler.desired import scheduling_json, warm_pool
from reconciler.errors import Diagnostic
from reconciler.plan.capacity import Totals
from reconciler.states import DesiredState, Tenant


@dataclass
class Loaded:
    """What a pass plans from. `candidates`: the only pool ids that can differ from
    the previous desired state (None: any may); `how`: full, files or reservations."""

    config: Config
    diags: list[Diagnostic]
    desired: DesiredState
    candidates: set[str] | None
    how: str
    sums: Totals | None = None  # capacity.totals(desired.pools), when kept


@dataclass
class Memory:
    root: Path  # the config directory
    commit: str
    prefix: str  # the config directory inside the repository, "" or "sub/"
    tree: Tree
    files: dict[str, loader.FileDocs]  # by path relative to the config directory
    config: Config
    diags: list[Diagnostic]
    desired: DesiredState
    sums: Totals
    res_key: dict[str, PoolKey] = field(default_factory=dict)  # pooled reservation -> pool
    res_file: dict[str, str] = field(default_factory=dict)  # reservation -> file
    key_names: dict[PoolKey, set[str]] = field(default_factory=dict)
    by_caller: dict[str, set[PoolKey]] = field(default_factory=dict)
    by_version: dict[tuple[str, str], set[PoolKey]] = field(default_factory=dict)
    pool_ids: list[str] = field(default_factory=list)  # desired.pools' ids, sorted
    counts: dict[PoolKey, PoolCount] = field(default_factory=dict)  # config.pool_counts
    code: tuple[list[Diagnostic], dict[str, str]] = ([], {})  # code.check_code's answer
    # CapacityLimit names by the account, or the (OWNER/NAME, commit), they limit
    limits_of: dict[str | tuple[str, str], list[str]] = field(default_factory=dict)


def index(memory: Memory) -> None:
    counts = memory.counts = dict(memory.config.pool_counts or {})
    for key, count in counts.items():
        names = {s for s in count.sources if not s.startswith("CapacityLimit/")}
        memory.key_names[key] = names
        for name in names:
            memory.res_key[name] = key
        memory.by_caller.setdefault(key[0], set()).add(key)
        memory.by_version.setdefault((key[1], key[2]), set()).add(key)
    for rel, docs in memory.files.items():
        for item in docs.items:
            if isinstance(item, Reservation):
                memory.res_file[item.name] = rel
    memory.pool_ids = [pool.id for pool in memory.desired.pools]
    config = memory.config
    for name, limit in config.limits.items():
        scope = limit.account if limit.account is not None else _version_of(limit, config)
        if scope is not None:
            memory.limits_of.setdefault(scope, []).append(name)


def carry(old: Config, new: Config) -> Config:
    """`new` (dataclasses.replace of `old`) with the loader's non-init fields of `old`."""
    object.__setattr__(new, "pool_counts", old.pool_counts)
    object.__setattr__(new, "code_digests", old.code_digests)
    return new


def _plain_reservations(docs: Iterable[loader.FileDocs]) -> list[Reservation] | None:
    out: list[Reservation] = []
    for file in docs:
        if file.diags or file.ghosts or len(file.items) != file.documents:
            return None
        for item in file.items:
            if not isinstance(item, Reservation):
                return None
            out.append(item)
    return out


def reservations_only(memory: Memory, rels: list[str], fresh: dict[str, loader.FileDocs],
                       commit: str | None) -> Loaded | None:
    """The new config when the changed files hold nothing but reservations that validate,
    resolve and are allowed, and no limit breaks; None: let the whole config be checked."""
    if any(d.file in rels for d in memory.diags):
        return None
    old = _plain_reservations(memory.files[rel] for rel in rels if rel in memory.files)
    new = _plain_reservations(fresh.values())
    if old is None or new is None:
        return None
    new_names = [r.name for r in new]
    if len(set(new_names)) != len(new_names) or any(
            memory.res_file.get(name, rels[0]) not in rels for name in new_names):
        return None  # a duplicate name: the whole config reports it, with both places
    config = memory.config
    reservations = dict(config.reservations)
    for reservation in old:
        reservations.pop(reservation.name, None)
    reservations.update((r.name, r) for r in new)
    base = carry(config, dataclasses.replace(config, reservations=reservations, commit=commit))
    # where the new reservations count (all of them must: else a rule reports them)
    probe = aggregate_pools(dataclasses.replace(base, reservations={r.name: r for r in new},
                                                limits={}))
    new_keys = {name: key for key, count in probe.items() for name in count.sources
                if not name.startswith("CapacityLimit/")}
    if set(new_keys) != set(new_names):
        return None
    affected = {memory.res_key[r.name] for r in old if r.name in memory.res_key}
    affected |= set(new_keys.values())
    names = set().union(*(memory.key_names.get(key, set()) for key in affected))
    names -= {r.name for r in old}
    names |= set(new_names)
    minimums = {name: config.limits[name] for key in affected
                for name in memory.limits_of.get((key[1], key[2]), [])}
    recount = aggregate_pools(dataclasses.replace(
        base, reservations={name: reservations[name] for name in names}, limits=minimums))
    counts = dict(memory.counts)  # a dict copies fast; the config's read-only view does not
    for key in affected:
        counts.pop(key, None)
        if key in recount:
            counts[key] = recount[key]
    if not _limits_hold(memory, base, counts, affected):
        return None
    object.__setattr__(base, "pool_counts", MappingProxyType(counts))
    desired, candidates = _recompile(memory, base, affected, recount)
    _reindex(memory, old, new, new_keys, affected, recount, fresh, rels)
    memory.files = {**{rel: d for rel, d in memory.files.items() if rel not in rels}, **fresh}
    memory.config, memory.desired, memory.counts = base, desired, counts
    return Loaded(base, memory.diags, desired, candidates, "reservations", memory.sums)


def _limits_hold(memory: Memory, config: Config, counts: dict[PoolKey, PoolCount],
                 affected: set[PoolKey]) -> bool:
    """No capacity limit of an affected caller or version is broken (else the whole config
    is checked, to report it exactly as a full pass does)."""
    callers = {key[0] for key in affected}
    versions = {(key[1], key[2]) for key in affected}
    keys = set().union(*(memory.by_caller.get(c, set()) for c in callers),
                       *(memory.by_version.get(v, set()) for v in versions), affected)
    pools = [counts[key] for key in keys if key in counts]
    scopes: list[str | tuple[str, str]] = [*callers, *versions]
    names = [name for scope in scopes for name in memory.limits_of.get(scope, [])]
    limits = {name: config.limits[name] for name in names}
    return not capacity.check(dataclasses.replace(config, limits=limits), pools)


def _version_of(limit: CapacityLimit, config: Config) -> tuple[str, str] | None:
    target = limit_target(limit, config.algorithms)
    return None if target is None else (target[0].ref, target[1].commit)


def _recompile(memory: Memory, config: Config, affected: set[PoolKey],
               recount: dict[PoolKey, PoolCount]) -> tuple[DesiredState, set[str]]:
    old_counts = memory.config.pool_counts or {}
    scheduling = scheduling_json(config.settings.kubernetes)
    pools = list(memory.desired.pools)
    ids = list(memory.pool_ids)
    candidates: set[str] = set()
    removed, added = [], []
    for key in affected:
        if key in old_counts:
            gone = _pool_id(old_counts[key])
            at = bisect_left(ids, gone)
            if at < len(ids) and ids[at] == gone:
                removed.append(pools[at])
                del ids[at], pools[at]
            candidates.add(gone)
    for key in affected:
        if key in recount:
            pool = warm_pool(recount[key], scheduling, config.code_digests)
            at = bisect_left(ids, pool.id)
            ids.insert(at, pool.id)
            pools.insert(at, pool)
            added.append(pool)
            candidates.add(pool.id)
    memory.pool_ids = ids
    memory.sums = memory.sums.moved(removed, added)
    callers = {pool.caller for pool in pools} if _tenants_move(memory, affected, recount) \
        else None
    tenants = memory.desired.tenants if callers is None else tuple(
        Tenant(c, str(config.accounts[c].type)) for c in sorted(callers))
    return DesiredState(tenants, memory.desired.quotas, tuple(pools)), candidates


def _tenants_move(memory: Memory, affected: set[PoolKey],
                  recount: dict[PoolKey, PoolCount]) -> bool:
    """Whether a caller may gain its first pool or lose its last one."""
    known = {tenant.account for tenant in memory.desired.tenants}
    for key in affected:
        if key[0] not in known or key not in recount:
            return True
    return False


def _pool_id(count: PoolCount) -> str:
    from reconciler.states import pool_id

    return pool_id(count.caller, count.algorithm.owner, count.algorithm.name,
                   count.version.commit)


def _reindex(memory: Memory, old: list[Reservation], new: list[Reservation],
             new_keys: dict[str, PoolKey], affected: set[PoolKey],
             recount: dict[PoolKey, PoolCount], fresh: dict[str, loader.FileDocs],
             rels: list[str]) -> None:
    for reservation in old:
        memory.res_key.pop(reservation.name, None)
        memory.res_file.pop(reservation.name, None)
    for name, key in new_keys.items():
        memory.res_key[name] = key
    for rel, docs in fresh.items():
        for item in docs.items:
            if isinstance(item, Reservation):
                memory.res_file[item.name] = rel
    for key in affected:
        count = recount.get(key)
        if count is None:
            memory.key_names.pop(key, None)
            memory.by_caller.get(key[0], set()).discard(key)
            memory.by_version.get((key[1], key[2]), set()).discard(key)
            continue
        memory.key_names[key] = {s for s in count.sources if not s.startswith("CapacityLimit/")}
        memory.by_caller.setdefault(key[0], set()).add(key)
        memory.by_version.setdefault((key[1], key[2]), set()).add(key)
