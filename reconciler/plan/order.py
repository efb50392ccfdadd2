"""Version moves and the one total ordering of a plan's actions. Pure.

Ordering follows gitops-engine's idea of a single sort key (phase, id):

 0 tenant create/update     an account's space exists before anything lives in it
 1 quota create/update
 2 pool delete              pools nobody reserves any more: frees capacity first
 3 pool scale down          frees capacity before anything grows
 4 pool update              rolling replacement, one extra replica at a time
 5 pool reload              rolling reload, one extra replica at a time
 6 pool create
 7 pool scale up
 8 pool delete (move)       the old side of a version move, after its new pool's
                            create; the executor waits for `wait_for` to be ready
 9 quota delete
10 tenant delete            last: nothing of the account is left

Putting every move delete after every create lets the new pools of several
moves warm up together instead of one wait after another; the capacity
check (capacity.py) accounts for that peak.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from reconciler.plan.plans import Action, Op
from reconciler.states import ELSEWHERE, ResourceKind, WarmPool

_ACCOUNT_PHASE = {
    (ResourceKind.TENANT, Op.CREATE): 0,
    (ResourceKind.TENANT, Op.UPDATE): 0,
    (ResourceKind.QUOTA, Op.CREATE): 1,
    (ResourceKind.QUOTA, Op.UPDATE): 1,
    (ResourceKind.QUOTA, Op.DELETE): 9,
    (ResourceKind.TENANT, Op.DELETE): 10,
}


def phase(action: Action) -> int:
    """The action's place in the ordering (see the module docstring)."""
    if action.kind is not ResourceKind.WARM_POOL:
        return _ACCOUNT_PHASE[(action.kind, action.op)]
    if action.op is Op.DELETE:
        return 8 if action.wait_for else 2
    if action.op is Op.SCALE:
        before, after = action.before, action.after
        assert isinstance(before, WarmPool) and isinstance(after, WarmPool)
        return 3 if after.replicas < before.replicas else 7
    return {Op.UPDATE: 4, Op.RELOAD: 5, Op.CREATE: 6}[action.op]


def order(actions: Iterable[Action]) -> tuple[Action, ...]:
    """Sort by (phase, kind, id): one deterministic total order."""
    return tuple(sorted(actions, key=lambda a: (phase(a), str(a.kind), a.id)))


def mark_moves(actions: Sequence[Action], desired_pools: Iterable[WarmPool]) -> list[Action]:
    """Turn pool deletes whose (caller, OWNER/NAME) is still desired into version moves.

    The delete waits for the replacement (`wait_for`). With several desired
    pools for the same caller and algorithm, the target is the one this plan
    creates, else the one with the lowest id, so the choice is stable from
    one plan to the next: a deferred delete reappears with the same target
    until it completes. A pool a runtime found in another place (`ID@WHERE`:
    Kubernetes after a namespacePrefix change) moves to the pool with its own id
    when that is desired, not to a sibling of the same caller and algorithm.
    """
    if not any(a.op is Op.DELETE and a.kind is ResourceKind.WARM_POOL for a in actions):
        return list(actions)
    created = {a.id for a in actions if a.op is Op.CREATE and a.kind is ResourceKind.WARM_POOL}
    targets: dict[tuple[str, str], WarmPool] = {}
    by_id: dict[str, WarmPool] = {}
    for pool in sorted(desired_pools, key=lambda p: (p.id not in created, p.id)):
        targets.setdefault((pool.caller, pool.algorithm), pool)
        by_id[pool.id] = pool
    marked: list[Action] = []
    for action in actions:
        old = action.before
        if action.op is Op.DELETE and isinstance(old, WarmPool):
            target = by_id.get(old.id.partition(ELSEWHERE)[0]) if ELSEWHERE in old.id \
                else None
            target = target or targets.get((old.caller, old.algorithm))
            if target is not None:
                label = target.version or target.commit[:12]
                action = dataclasses.replace(
                    action, wait_for=target.id,
                    reason=f"moved to {label} (pool {target.id}); deleted once it is ready",
                )
        marked.append(action)
    return marked


def is_move(action: Action) -> bool:
    return action.op is Op.DELETE and action.kind is ResourceKind.WARM_POOL and bool(
        action.wait_for)
