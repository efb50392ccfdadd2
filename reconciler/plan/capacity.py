"""Capacity checks of a plan: quotas, steady-state placement, transient surge. Pure.

Three questions, each answered with diagnostics that name the pool:

1. Quotas: does each caller stay within its maxEngines / maxGpus? (checked
   even without nodes, as in `diff` between two commits: see quota_errors)
2. Steady state: do all desired replicas fit the nodes? Replicas are placed
   first-fit decreasing (largest GPU, then CPU, then memory need first) on
   the nodes of their processor class (placement.py). A failure here is an
   error whatever the flags: the plan's end state cannot exist.
3. Surge: apply needs room beyond the steady state while it works, on the
   nodes (skipped without nodes) and within the caller's quota (checked
   even without nodes: the runtimes enforce quotas strictly, so a surge over
   one would stall the move or the rollout, not just slow it).
   - A version move keeps the old pool until the new one is ready, and the
     plan deletes every moved-from pool after all creates (order.py), so at
     the peak all old sides run next to the full desired state. The node
     check adds each old side to the steady placement in turn (in id order);
     one that does not fit is a surge failure, and is taken out again so the
     next move is judged on its own. The quota check does the same per
     caller: desired engines (GPUs) of the caller plus the replicas (GPUs)
     of its moved-from pools, each old side added in id order.
   - A rolling reload or update replaces one replica at a time with
     maxUnavailable 0, so it needs room for one extra replica of that pool
     (of its new shape) while the others keep serving: on the nodes, and in
     the caller's quota (desired engines + 1, desired GPUs + the pool's
     GPUs per replica). Those run one after another, so each is checked
     alone, against the peak placement above: conservative, since reloads
     run before creates, but never optimistic.
   A surge that does not fit is an error unless --allow-reduced-capacity;
   then it is a warning and the actions concerned get `in_place`: a rolling
   replacement stops an old replica before starting a new one, and a move
   hands the old pool over to the new one a replica at a time (the executor
   scales the old side down by one, waits for one more new replica, and so
   on), keeping replicas-1 warm. The exception is the repair of drift (a hand edit
   of a pod template, which no commit asked to change): without the flag it is
   a warning and the repair is held out of the plan, so one hand edit never
   refuses every other change of the config (the daemon would apply nothing).
   Callers already over their quota in the steady state get no surge check:
   quota_errors has refused the plan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reconciler.errors import Diagnostic, Severity
from reconciler.plan import placement
from reconciler.plan.order import is_move
from reconciler.plan.placement import NodeTree, Vec
from reconciler.plan.plans import Action, Op
from reconciler.states import DesiredState, Node, Quota, ResourceKind, WarmPool

REDUCED_HINT = "pass --allow-reduced-capacity to replace in place, keeping replicas-1 warm"
HANDOVER_HINT = ("pass --allow-reduced-capacity to hand over one replica at a time "
                 "(replicas-1 kept warm)")
IN_PLACE = "replacing in place, keeping replicas-1 warm"
HANDOVER = "handing over one replica at a time, keeping replicas-1 warm"
_ZERO: Vec = (0, 0, 0, 0)
MAX_NAMED_POOLS = 20  # placement errors named one by one; the rest are counted


@dataclass
class CapacityReport:
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    in_place: set[str] = field(default_factory=set)  # ids of pool actions to run in place
    held: set[str] = field(default_factory=set)  # ids of drift repairs left out of the plan


Spec = tuple[str, str, str, int]  # (processor, cpu, memory, gpu) as a pool has them


@dataclass(frozen=True)
class Totals:
    """What the capacity checks need of a desired state's pools, in sums: per caller
    (engines, GPUs) and pool count, and per pool spec the replicas. `totals(pools)` makes them; the
    daemon keeps them between plans with `Totals.moved` (O(changed pools)), so that
    checking one changed reservation does not walk 100,000 pools."""

    usage: dict[str, tuple[int, int]]
    specs: dict[Spec, int]
    pools: dict[str, int]  # how many pools each caller has

    def moved(self, removed: Iterable[WarmPool], added: Iterable[WarmPool]) -> Totals:
        usage, specs, counts = dict(self.usage), dict(self.specs), dict(self.pools)
        for sign, pools in ((-1, removed), (1, added)):
            for pool in pools:
                count = counts.get(pool.caller, 0) + sign
                if count:
                    counts[pool.caller] = count
                else:
                    counts.pop(pool.caller, None)
                engines, gpus = usage.get(pool.caller, (0, 0))
                engines += sign * pool.replicas
                gpus += sign * pool.replicas * pool.gpu
                if engines or gpus:
                    usage[pool.caller] = (engines, gpus)
                else:
                    usage.pop(pool.caller, None)
                spec = _spec(pool)
                replicas = specs.get(spec, 0) + sign * pool.replicas
                if replicas:
                    specs[spec] = replicas
                else:
                    specs.pop(spec, None)
        return Totals(usage, specs, counts)


def totals(pools: Sequence[WarmPool]) -> Totals:
    specs: dict[Spec, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for pool in pools:
        specs[(pool.processor, pool.cpu, pool.memory, pool.gpu)] += pool.replicas
        counts[pool.caller] += 1
    return Totals(_usage(pools), dict(specs), dict(counts))


def _spec(pool: WarmPool) -> Spec:
    return (pool.processor, pool.cpu, pool.memory, pool.gpu)


def quota_errors(desired: DesiredState, sums: Totals | None = None) -> list[Diagnostic]:
    """Callers whose desired replicas or GPUs exceed their account limit.
    `sums`: totals(desired.pools), when the caller keeps them."""
    usage = sums.usage if sums is not None else _usage(desired.pools)
    errors: list[Diagnostic] = []
    for quota in desired.quotas:
        used, used_gpus = usage.get(quota.account, (0, 0))
        if used > quota.max_engines:
            errors.append(Diagnostic(
                f"account {quota.account}: {used} warm replicas exceed maxEngines "
                f"{quota.max_engines} (capacity limit {quota.source})", path=quota.account))
        if quota.max_gpus is not None and used_gpus > quota.max_gpus:
            errors.append(Diagnostic(
                f"account {quota.account}: {used_gpus} GPUs of warm replicas exceed maxGpus "
                f"{quota.max_gpus} (capacity limit {quota.source})", path=quota.account))
    return errors


def _usage(pools: Sequence[WarmPool]) -> dict[str, tuple[int, int]]:
    """(engines, GPUs) per caller: replicas, and replicas x GPUs per replica."""
    engines: dict[str, int] = defaultdict(int)
    gpus: dict[str, int] = defaultdict(int)
    for pool in pools:
        engines[pool.caller] += pool.replicas
        if pool.gpu:
            gpus[pool.caller] += pool.replicas * pool.gpu
    return {caller: (count, gpus.get(caller, 0)) for caller, count in engines.items()}


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


def check_capacity(desired: DesiredState, actions: Sequence[Action],
                   nodes: Sequence[Node] | None, *,
                   allow_reduced_capacity: bool, sums: Totals | None = None) -> CapacityReport:
    """Steady-state placement, then the surge of moves and rolling replacements, on the
    nodes (skipped when `nodes` is None) and within each caller's quota.
    `sums`: totals(desired.pools), when the caller keeps them."""
    report = CapacityReport()
    if sums is None:
        sums = totals(desired.pools)
    if nodes is not None:
        cluster = _Cluster(nodes)
        _place_steady(cluster, desired, report, sums)
        if report.errors:
            return report  # the surge is moot when the end state itself does not fit
        _check_moves(cluster, actions, report, allow_reduced_capacity)
        _check_rolling(cluster, actions, report, allow_reduced_capacity)
    _check_quota_surge(desired, actions, report, allow_reduced_capacity, sums)
    return report


Shape = tuple[str, Vec]  # (processor class, what one replica needs)


def _place_steady(cluster: _Cluster, desired: DesiredState, report: CapacityReport,
                  sums: Totals) -> None:
    shapes = _shapes(sums.specs)
    for (cls, need), (total, _) in shapes.items():
        cluster.demand[cls] = placement.add(cluster.demand[cls], need, total)
    unplaced: dict[str, list[int]] = {}  # processor class -> [pools, replicas] not shown
    for pool, need, left in _place_by_shape(cluster, shapes, desired.pools):
        cls = _processor(pool)
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


Specs = list[Spec]  # the pool specs of one shape


def _shapes(specs: dict[Spec, int]) -> dict[Shape, tuple[int, Specs]]:
    """Each shape's total replicas (and the pool specs that have it), the shapes in
    first-fit-decreasing order (largest GPU, then CPU, then memory need first), from the
    replicas per pool spec (Totals.specs). A big repo has 100,000 pools and a handful of
    shapes: no sort of pools and no list of them (placement finds a shape's pools only
    if it falls short)."""
    shapes: dict[Shape, tuple[int, Specs]] = {}
    for spec, total in specs.items():
        processor, cpu, memory, gpu = spec
        shape = ("gpu" if processor == "gpu" or gpu > 0 else "cpu",
                 placement.need_of(cpu, memory, gpu))
        known, same = shapes.get(shape, (0, []))
        shapes[shape] = (known + total, [*same, spec])
    order = sorted(shapes, key=lambda shape: (-shape[1][2], -shape[1][0], -shape[1][1],
                                              shape[0]))
    return {shape: shapes[shape] for shape in order}


def _place_by_shape(cluster: _Cluster, shapes: dict[Shape, tuple[int, Specs]],
                    pools: Sequence[WarmPool]) -> list[tuple[WarmPool, Vec, int]]:
    """Place pools in first-fit-decreasing order and return (pool, need, replicas left)
    for each that does not fit whole.

    First-fit treats replicas of one shape alike, so all the pools of a shape are
    placed in a single call: thousands of pools cost a few calls, not one each. When
    a shape falls short, the replicas left over are its last pools' in id order,
    exactly as placing pool by pool in (shape, id) order would leave them (once a
    shape stops fitting, the pools after it place nothing)."""
    short: list[tuple[WarmPool, Vec, int]] = []
    for (cls, need), (total, specs) in shapes.items():
        left, _ = cluster.trees[cls].place(need, total)
        if not left:
            continue
        placed = total - left
        wanted = set(specs)
        group = [p for p in pools if (p.processor, p.cpu, p.memory, p.gpu) in wanted]
        for pool in sorted(group, key=lambda p: p.id):
            missing = pool.replicas - min(pool.replicas, placed)
            placed = max(placed - pool.replicas, 0)
            if missing:
                short.append((pool, need, missing))
    return short


def _decreasing(pool: WarmPool) -> tuple[int, int, int, str]:
    """First-fit-decreasing order pool by pool (what _shapes orders by shape)."""
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


def _surge(report: CapacityReport, message: str, ids: Sequence[str], allow: bool, *,
           hint: str = REDUCED_HINT, fallback: str = IN_PLACE, drift: bool = False) -> None:
    """A surge that does not fit: in place with `allow`, else an error; or, for the repair
    of drift (`drift`: no commit asked for it), a warning and the repair held back, so a
    hand edit never blocks every other change of the config."""
    if drift and not allow:
        report.warnings.append(Diagnostic(
            f"{message}; the drift is not reverted (the rest of the plan goes ahead): "
            f"{hint}", path=ids[0], severity=Severity.WARNING))
        report.held.update(ids)
        return
    if allow:
        report.warnings.append(Diagnostic(
            f"{message}; {fallback} (--allow-reduced-capacity)",
            path=ids[0], severity=Severity.WARNING))
        report.in_place.update(ids)
    else:
        report.errors.append(Diagnostic(f"{message}; {hint}", path=ids[0]))


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


def rolls(action: Action) -> bool:
    """Does the action replace a pool's replicas one by one (a reload, or an update of what
    they run)? Not an update whose only change is drift outside it (drift_rolls False)."""
    if action.kind is not ResourceKind.WARM_POOL or action.op not in (Op.RELOAD, Op.UPDATE):
        return False
    live = action.before
    return not (isinstance(live, WarmPool) and not live.drift_rolls
                and all(c.path == "drift" for c in action.changes))


def drift_only(action: Action) -> bool:
    """Is the action only the repair of a hand edit (no commit asked for it)?"""
    return action.op is Op.UPDATE and bool(action.changes) and \
        all(c.path == "drift" for c in action.changes)


def _check_rolling(cluster: _Cluster, actions: Sequence[Action], report: CapacityReport,
                   allow: bool) -> None:
    for action in actions:
        if not rolls(action) or action.id in report.held:
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
                       f"not fit: {why}", [pool.id], allow, drift=drift_only(action))


def _check_quota_surge(desired: DesiredState, actions: Sequence[Action],
                       report: CapacityReport, allow: bool, sums: Totals) -> None:
    """The caller's maxEngines / maxGpus during moves and rolling replacements."""
    quotas = {q.account: q for q in desired.quotas}
    steady = sums.usage
    within = {account: steady.get(account, (0, 0)) for account, quota in quotas.items()
              if not _excess(quota, steady.get(account, (0, 0)))}  # others: quota_errors
    _quota_moves(quotas, within, actions, report, allow)
    _quota_rolling(quotas, within, actions, report, allow)


def _quota_moves(quotas: dict[str, Quota], steady: dict[str, tuple[int, int]],
                 actions: Sequence[Action], report: CapacityReport, allow: bool) -> None:
    peak = dict(steady)  # grows by each old side that fits, in id order
    for action in sorted((a for a in actions if is_move(a)), key=lambda a: a.id):
        old = action.before
        assert isinstance(old, WarmPool) and action.wait_for
        if old.caller not in peak:
            continue
        engines, gpus = peak[old.caller]
        moved = (engines + old.replicas, gpus + old.replicas * old.gpu)
        over = _excess(quotas[old.caller], moved)
        if not over:
            peak[old.caller] = moved
            continue
        what, limit, fix = _describe_excess(quotas[old.caller], over, "during the move")
        _surge(report, f"pool {action.wait_for} replaces pool {old.id} make-before-break: "
                       f"account {old.caller} would {what}, {limit}",
               [action.wait_for, old.id], allow, hint=f"{fix}, or {HANDOVER_HINT}",
               fallback=HANDOVER)


def _quota_rolling(quotas: dict[str, Quota], steady: dict[str, tuple[int, int]],
                   actions: Sequence[Action], report: CapacityReport, allow: bool) -> None:
    for action in actions:
        if not rolls(action) or action.id in report.held:
            continue
        pool = action.after
        assert isinstance(pool, WarmPool)
        if pool.caller not in steady:
            continue
        engines, gpus = steady[pool.caller]
        over = _excess(quotas[pool.caller], (engines + 1, gpus + pool.gpu))
        if not over:
            continue
        what, limit, fix = _describe_excess(quotas[pool.caller], over, "meanwhile")
        verb = "reloads" if action.op is Op.RELOAD else "is replaced"
        _surge(report, f"pool {pool.id} {verb} one replica at a time and needs one extra "
                       f"replica: account {pool.caller} would {what}, {limit}",
               [pool.id], allow, hint=f"{fix}, or {REDUCED_HINT}", drift=drift_only(action))


def _excess(quota: Quota, usage: tuple[int, int]) -> dict[str, int]:
    """The limits `usage` (engines, GPUs) exceeds: {"maxEngines": n, "maxGpus": g}."""
    over: dict[str, int] = {}
    if usage[0] > quota.max_engines:
        over["maxEngines"] = usage[0]
    if quota.max_gpus is not None and usage[1] > quota.max_gpus:
        over["maxGpus"] = usage[1]
    return over


def _describe_excess(quota: Quota, over: dict[str, int], when: str) -> tuple[str, str, str]:
    """("run 4 warm replicas during the move", "over its maxEngines 3 (capacity limit X)",
    "raise maxEngines to 4"), for the limits exceeded."""
    whats, limits = [], []
    if "maxEngines" in over:
        whats.append(f"run {over['maxEngines']} warm replicas")
        limits.append(f"maxEngines {quota.max_engines}")
    if "maxGpus" in over:
        whats.append(f"use {over['maxGpus']} GPUs")
        limits.append(f"maxGpus {quota.max_gpus}")
    source = f" (capacity limit {quota.source})" if quota.source else ""
    fix = " and ".join(f"{name} to {value}" for name, value in over.items())
    return (f"{' and '.join(whats)} {when}", f"over its {' and '.join(limits)}{source}",
            f"raise {fix}")
