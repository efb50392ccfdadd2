"""What a plan does to capacity, per account and per processor class; node usage. Pure.

`plan_capacity` is the display-only `capacity` field of the plan JSON (an
extra field of formatVersion 1): the reviewer's figures, computed once when
the plan is made so every renderer works from the JSON alone. It costs one
pass over the desired and the live pools (~30 ms at 10,000, against ~0.5 s
for the plan) and nothing for a plan without actions. Only accounts the plan
touches are listed.

`node_usage` places pools first-fit decreasing, as the capacity check does,
and reports per node what is allocatable and what is placed (the dashboard).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from reconciler.plan import placement
from reconciler.plan.plans import Action
from reconciler.states import DesiredState, LiveState, Node, WarmPool

PROCESSORS = ("cpu", "gpu")


def processor_of(pool: WarmPool) -> str:
    return "gpu" if pool.processor == "gpu" or pool.gpu > 0 else "cpu"


def _per_account(pools: Iterable[WarmPool]) -> dict[str, list[int]]:
    """caller -> [pools, engines, GPUs]."""
    usage: dict[str, list[int]] = {}
    for pool in pools:
        row = usage.setdefault(pool.caller, [0, 0, 0])
        row[0] += 1
        row[1] += pool.replicas
        row[2] += pool.replicas * pool.gpu
    return usage


def _per_processor(pools: Iterable[WarmPool]) -> dict[str, list[int]]:
    """processor class -> [pods, GPUs]."""
    usage = {cls: [0, 0] for cls in PROCESSORS}
    for pool in pools:
        row = usage[processor_of(pool)]
        row[0] += pool.replicas
        row[1] += pool.replicas * pool.gpu
    return usage


def _pair(before: Any, after: Any) -> dict[str, Any]:
    return {"before": before, "after": after}


def touched_accounts(actions: Sequence[Action]) -> list[str]:
    accounts = set()
    for action in actions:
        obj = action.obj
        accounts.add(obj.caller if isinstance(obj, WarmPool) else obj.account)
    return sorted(accounts)


def plan_capacity(desired: DesiredState, live: LiveState, actions: Sequence[Action],
                  nodes: Sequence[Node] | None) -> dict[str, Any]:
    """{"accounts": [...], "processors": [...]}: before -> after of each figure; {} for a
    plan without actions (nothing to review, and a no-op plan stays as cheap as it was)."""
    if not actions:
        return {}
    before, after = _per_account(live.pools), _per_account(desired.pools)
    quotas_before = {q.account: q for q in live.quotas}
    quotas_after = {q.account: q for q in desired.quotas}
    accounts = []
    for account in touched_accounts(actions):
        b, a = before.get(account, [0, 0, 0]), after.get(account, [0, 0, 0])
        qb, qa = quotas_before.get(account), quotas_after.get(account)
        accounts.append({
            "account": account, "pools": _pair(b[0], a[0]), "engines": _pair(b[1], a[1]),
            "gpus": _pair(b[2], a[2]),
            "maxEngines": _pair(qb.max_engines if qb else None, qa.max_engines if qa else None),
            "maxGpus": _pair(qb.max_gpus if qb else None, qa.max_gpus if qa else None)})
    pb, pa = _per_processor(live.pools), _per_processor(desired.pools)
    processors = []
    for cls in PROCESSORS:
        room = None
        if nodes is not None:
            mine = [n for n in nodes if n.processor == cls]
            room = {"nodes": len(mine), "pods": sum(n.pods for n in mine),
                    "gpus": sum(n.gpu for n in mine)}
        if not (room and room["nodes"]) and not (pb[cls][0] or pa[cls][0]):
            continue  # no such nodes (or none known) and nothing of this class
        processors.append({"processor": cls, "pods": _pair(pb[cls][0], pa[cls][0]),
                           "gpus": _pair(pb[cls][1], pa[cls][1]), "allocatable": room})
    return {"accounts": accounts, "processors": processors}


def node_usage(pools: Sequence[WarmPool], nodes: Sequence[Node]) -> list[dict[str, Any]]:
    """Per node: allocatable and placed (cpu millis, memory bytes, GPUs, pods), placing the
    pools first-fit decreasing as the plan's capacity check does; and what did not fit."""
    trees = {cls: placement.NodeTree([n for n in nodes if n.processor == cls])
             for cls in PROCESSORS}
    order = sorted(pools, key=lambda p: (-placement.replica_need(p)[2],
                                         -placement.replica_need(p)[0],
                                         -placement.replica_need(p)[1], p.id))
    unplaced = {cls: 0 for cls in PROCESSORS}
    for pool in order:
        cls = processor_of(pool)
        left, _ = trees[cls].place(placement.replica_need(pool), pool.replicas)
        unplaced[cls] += left
    rows = []
    for cls in PROCESSORS:
        tree = trees[cls]
        for node, free in zip(tree.nodes, tree.free, strict=True):
            total = (node.cpu_millis, node.memory_bytes, node.gpu, node.pods)
            rows.append({"name": node.name, "processor": cls,
                         "allocatable": dict(zip(placement.DIMS, total, strict=True)),
                         "placed": {d: total[i] - free[i]
                                    for i, d in enumerate(placement.DIMS)},
                         "unplaced": unplaced[cls]})
    return rows

