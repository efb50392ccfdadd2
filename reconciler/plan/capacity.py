"""Capacity checks of a plan: quotas, steady-state placement, transient surge. Pure.

Three questions, each answered with diagnostics that name the pool:

1. Quotas: does each caller stay within its maxEngines / maxGpus? (checked
   even without nodes, as in `diff` between two commits: see quota_errors)
2. Steady state: do all desired replicas fit the nodes? Replicas are placed
   first-fit decreasing (largest GPU, then CPU, then memory need first) on
   the nodes of their processor class (placement.py). A failure here is an
   error whatever the flags: the plan's end state cannot exist.
3. Surge: apply needs room beyond the steady state while it works.
   - A version move keeps the old pool until the new one is ready, and the
     plan deletes every moved-from pool after all creates (order.py), so at
     the peak all old sides run next to the full desired state. The check
     adds each old side to the steady placement in turn (in id order); one
     that does not fit is a surge failure, and is taken out again so the
     next move is judged on its own.
   - A rolling reload or update replaces one replica at a time with
     maxUnavailable 0, so it needs room for one extra replica of that pool
     (of its new shape) while the others keep serving. Those run one after
     another, so each is checked alone, against the peak placement above:
     conservative, since reloads run before creates, but never optimistic.
   A surge that does not fit is an error unless --allow-reduced-capacity;
   then it is a warning and the actions concerned get `in_place`: replace
   replicas in place, keeping replicas-1 warm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.errors import Diagnostic, Severity
from reconciler.plan import placement
from reconciler.plan.order import is_move
from reconciler.plan.placement import NodeTree, Vec
from reconciler.plan.plans import Action, Op
from reconciler.states import DesiredState, Node, ResourceKind, WarmPool

REDUCED_HINT = "pass --allow-reduced-capacity to replace in place, keeping replicas-1 warm"
_ZERO: Vec = (0, 0, 0, 0)
MAX_NAMED_POOLS = 20  # placement errors named one by one; the rest are counted


@dataclass
class CapacityReport:
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    in_place: set[str] = field(default_factory=set)  # ids of pool actions to run in place


def quota_errors(desired: DesiredState) -> list[Diagnostic]:
    """Callers whose desired replicas or GPUs exceed their account limit."""
    engines: dict[str, int] = {}
    gpus: dict[str, int] = {}
    for pool in desired.pools:
        engines[pool.caller] = engines.get(pool.caller, 0) + pool.replicas
        gpus[pool.caller] = gpus.get(pool.caller, 0) + pool.replicas * pool.gpu
    errors: list[Diagnostic] = []
    for quota in desired.quotas:
        used = engines.get(quota.account, 0)
        if used > quota.max_engines:
            errors.append(Diagnostic(
                f"account {quota.account}: {used} warm replicas exceed maxEngines "
                f"{quota.max_engines} (capacity limit {quota.source})", path=quota.account))
        used_gpus = gpus.get(quota.account, 0)
        if quota.max_gpus is not None and used_gpus > quota.max_gpus:
            errors.append(Diagnostic(
                f"account {quota.account}: {used_gpus} GPUs of warm replicas exceed maxGpus "
                f"{quota.max_gpus} (capacity limit {quota.source})", path=quota.account))
    return errors


class _Cluster:
    """One NodeTree per processor class plus the demand of the current scenario."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.trees = {cls: NodeTree([n for n in nodes if n.processor == cls])
                      for cls in ("cpu", "gpu")}
        self.demand = {"cpu": _ZERO, "gpu": _ZERO}

    def why(self, pool: WarmPool, need: Vec) -> tuple[int | None, str]:
        cls = _processor(pool)
        return placement.shortfall(self.trees[cls], cls, need, self.demand[cls])


def _processor(pool: WarmPool) -> str:
    return "gpu" if pool.processor == "gpu" or pool.gpu > 0 else "cpu"


def check_capacity(desired: DesiredState, actions: Sequence[Action], nodes: Sequence[Node],
                   *, allow_reduced_capacity: bool) -> CapacityReport:
    """Steady-state placement, then the surge of moves and rolling replacements."""
    report = CapacityReport()
    cluster = _Cluster(nodes)
    pools = sorted(desired.pools, key=_decreasing)
    for pool in pools:
        cls = _processor(pool)
        cluster.demand[cls] = placement.add(cluster.demand[cls], placement.replica_need(pool),
                                            pool.replicas)
    unplaced: dict[str, list[int]] = {}  # processor class -> [pools, replicas] not shown
    for pool in pools:
        need = placement.replica_need(pool)
        cls = _processor(pool)
        left, _ = cluster.trees[cls].place(need, pool.replicas)
        if not left:
            continue
        if len(report.errors) < MAX_NAMED_POOLS:
            report.errors.append(_steady_error(cluster, pool, need, left))
        else:
            counts = unplaced.setdefault(cls, [0, 0])
            counts[0] += 1
            counts[1] += left
    for cls, (more, replicas) in sorted(unplaced.items()):
        report.errors.append(Diagnostic(
            f"... and {more} more pool{'s' if more != 1 else ''} with {replicas} replica"
            f"{'s' if replicas != 1 else ''} that do not fit on the {cls} nodes"))
    if report.errors:
        return report  # the surge is moot when the end state itself does not fit
    _check_moves(cluster, actions, report, allow_reduced_capacity)
    _check_rolling(cluster, actions, report, allow_reduced_capacity)
    return report


def _decreasing(pool: WarmPool) -> tuple[int, int, int, str]:
    need = placement.replica_need(pool)
    return (-need[2], -need[0], -need[1], pool.id)


def _steady_error(cluster: _Cluster, pool: WarmPool, need: Vec, left: int) -> Diagnostic:
    dim, why = cluster.why(pool, need)
    shape = placement.describe(dim, need[dim]) if dim is not None else (
        placement.describe_need(need))
    return Diagnostic(f"pool {pool.id} needs {shape} per replica; "
                      f"{_count(left, pool.replicas)} not fit: {why}", path=pool.id)


def _count(left: int, total: int) -> str:
    if left == total:
        return f"{total} replica does" if total == 1 else f"{total} replicas do"
    return f"{left} of {total} replicas {'does' if left == 1 else 'do'}"


def _surge(report: CapacityReport, message: str, ids: Sequence[str], allow: bool) -> None:
    if allow:
        report.warnings.append(Diagnostic(
            f"{message}; replacing in place, keeping replicas-1 warm (--allow-reduced-capacity)",
            path=ids[0], severity=Severity.WARNING))
        report.in_place.update(ids)
    else:
        report.errors.append(Diagnostic(f"{message}; {REDUCED_HINT}", path=ids[0]))


def _check_moves(cluster: _Cluster, actions: Sequence[Action], report: CapacityReport,
                 allow: bool) -> None:
    for action in sorted((a for a in actions if is_move(a)), key=lambda a: a.id):
        old = action.before
        assert isinstance(old, WarmPool) and action.wait_for
        cls, need = _processor(old), placement.replica_need(old)
        tree = cluster.trees[cls]
        before = cluster.demand[cls]
        cluster.demand[cls] = placement.add(before, need, old.replicas)
        left, assignment = tree.place(need, old.replicas)
        if not left:
            continue
        _, why = cluster.why(old, need)
        tree.remove(need, assignment)
        cluster.demand[cls] = before
        _surge(report, f"pool {action.wait_for} replaces pool {old.id} make-before-break, "
                       f"and the {old.replicas} old replicas ({placement.describe_need(need)} "
                       f"each) do not fit next to the new pool while it warms up: {why}",
               [action.wait_for, old.id], allow)


def _check_rolling(cluster: _Cluster, actions: Sequence[Action], report: CapacityReport,
                   allow: bool) -> None:
    for action in actions:
        if action.kind is not ResourceKind.WARM_POOL or action.op not in (Op.RELOAD, Op.UPDATE):
            continue
        pool = action.after
        assert isinstance(pool, WarmPool)
        cls, need = _processor(pool), placement.replica_need(pool)
        if cluster.trees[cls].first_fit(need) is not None:
            continue
        saved = cluster.demand[cls]
        cluster.demand[cls] = placement.add(saved, need, 1)
        _, why = cluster.why(pool, need)
        cluster.demand[cls] = saved
        verb = "reloads" if action.op is Op.RELOAD else "is replaced"
        _surge(report, f"pool {pool.id} {verb} one replica at a time and needs room for one "
                       f"extra replica ({placement.describe_need(need)}) meanwhile, which does "
                       f"not fit: {why}", [pool.id], allow)
