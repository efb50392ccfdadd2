"""The checks `apply --plan FILE` makes against the live state before any write. Pure.

A plan file is data that may have travelled (SPEC.md section 7). Its
signature (reconciler.planfiles) says `plan` wrote it with this state
directory's key; these checks hold even without trusting that:

1. Shape: every action is one the planner can make (create has only an
   after, delete only a before, ids agree, a pool's id is its caller,
   algorithm and commit), each object at most once.
2. Re-derivation: the end state the plan leads to is the live state with
   each action's object written (or deleted). The planner's own diff and
   ordering, run from the live state to that end state, must give exactly
   the plan's actions, in its order, each starting from the live object. So
   a file cannot carry an action `plan` would not have made of its own end
   state (a "scale" that is really a reload, a delete not waiting for its
   replacement, a `before` that is not what is live).
3. Safety and capacity of that end state, now: quotas, placement on the
   nodes the runtime has now (the live revision does not cover nodes), the
   surge of moves and rolling reloads, mass-delete limits with the plan's
   recorded options (`allowMassDelete`, `allowReducedCapacity`, `safety`).
4. Access, where the config that made the plan is at hand: a caller other
   than the owner (or a member of the owning organization) gets no warm
   pool of a private or unpublished version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.config.model import Config, Safety, Visibility
from reconciler.config.resolve import may_access
from reconciler.errors import Diagnostic
from reconciler.plan.capacity import check_capacity, quota_errors
from reconciler.plan.order import order
from reconciler.plan.plans import Action, Op, Plan, Resource
from reconciler.plan.safety import check_safety, safety_options
from reconciler.states import DesiredState, LiveState, Node, ResourceKind, WarmPool, pool_id

ACCOUNT_OPS = frozenset({Op.CREATE, Op.UPDATE, Op.DELETE})
MAX_LISTED = 10


def recheck(plan: Plan, live: LiveState, nodes: Sequence[Node] | None, *,
            config: Config | None = None) -> list[Diagnostic]:
    """Why the plan must not be applied to `live` now; empty when it may."""
    problems = _shape(plan)
    options, option_problems = plan_options(plan.options)
    problems += option_problems
    if problems:
        return _cap(problems)
    end = end_state(plan, live)
    problems += _rederive(plan, live, end)
    problems += quota_errors(end)
    report = check_capacity(end, plan.actions, nodes,
                            allow_reduced_capacity=options["allowReducedCapacity"])
    problems += report.errors
    marked = {a.id for a in plan.actions if a.in_place}
    if marked and not options["allowReducedCapacity"]:
        problems.append(Diagnostic("the plan replaces pools in place (inPlace) but was not made "
                                   "with --allow-reduced-capacity"))
    for missing in sorted(report.in_place - marked):
        problems.append(Diagnostic(f"pool {missing}: its surge no longer fits; it would have "
                                   "to be replaced in place, which the plan does not say"))
    errors, _ = check_safety(end, live, plan.actions, options["safety"],
                             allow_mass_delete=options["allowMassDelete"])
    problems += errors
    if config is not None:
        problems += _access(plan, config)
    return _cap(problems)


def plan_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[Diagnostic]]:
    """The options a plan was made with ({allowMassDelete, allowReducedCapacity: bool,
    safety: Safety}), and what is wrong with them."""
    problems: list[Diagnostic] = []
    out: dict[str, Any] = {}
    for name in ("allowMassDelete", "allowReducedCapacity"):
        value = options.get(name, False)
        if not isinstance(value, bool):
            problems.append(Diagnostic(f"options.{name} must be true or false, got {value!r}"))
            value = False
        out[name] = value
    safety = options.get("safety") or {}
    limits = safety_options(Safety())
    if not isinstance(safety, dict) or set(safety) - set(limits):
        problems.append(Diagnostic(f"options.safety is malformed: {safety!r}"))
        safety = {}
    for name in limits:
        value = safety.get(name, limits[name])
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(Diagnostic(f"options.safety.{name} must be a count >= 0, "
                                       f"got {value!r}"))
        else:
            limits[name] = value
    out["safety"] = Safety(limits["maxDeletions"], limits["maxDeletePercent"])
    return out, problems


def end_state(plan: Plan, live: LiveState) -> DesiredState:
    """The live state with every action of the plan carried out."""
    state: dict[ResourceKind, dict[str, Resource]] = {
        ResourceKind.TENANT: {t.id: t for t in live.tenants},
        ResourceKind.QUOTA: {q.id: q for q in live.quotas},
        ResourceKind.WARM_POOL: {p.id: p for p in live.pools},
    }
    for action in plan.actions:
        if action.op is Op.DELETE:
            state[action.kind].pop(action.id, None)
        elif action.after is not None:
            state[action.kind][action.id] = action.after

    def sorted_values(kind: ResourceKind) -> tuple[Any, ...]:
        return tuple(obj for _, obj in sorted(state[kind].items()))

    return DesiredState(tenants=sorted_values(ResourceKind.TENANT),
                        quotas=sorted_values(ResourceKind.QUOTA),
                        pools=sorted_values(ResourceKind.WARM_POOL))


def _shape(plan: Plan) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    seen: set[tuple[ResourceKind, str]] = set()
    for index, action in enumerate(plan.actions):
        where = f"actions[{index}] ({action.op} {action.kind} {action.id})"
        why = _action_shape(action)
        if why:
            problems.append(Diagnostic(f"{where}: {why}"))
        if (action.kind, action.id) in seen:
            problems.append(Diagnostic(f"{where}: a second action on the same object"))
        seen.add((action.kind, action.id))
    return problems


def _action_shape(action: Action) -> str | None:
    if action.kind is not ResourceKind.WARM_POOL and action.op not in ACCOUNT_OPS:
        return f"a {action.kind} has no {action.op}"
    if (action.before is None) != (action.op is Op.CREATE):
        return "only a create has no live object (`object.before`)"
    if (action.after is None) != (action.op is Op.DELETE):
        return "only a delete has no desired object (`object.after`)"
    for obj in (action.before, action.after):
        if obj is not None and obj.id != action.id:
            return f"its object has the id {obj.id!r}"
        if isinstance(obj, WarmPool):
            why = _pool_shape(obj)
            if why:
                return why
    if (action.wait_for or action.in_place) and action.kind is not ResourceKind.WARM_POOL:
        return "only warm pools wait or are replaced in place"
    if action.wait_for and action.op is not Op.DELETE:
        return "only a delete waits for another pool"
    return None


def _pool_shape(pool: WarmPool) -> str | None:
    if pool.id != pool_id(pool.caller, pool.owner, pool.name, pool.commit):
        return (f"pool id {pool.id!r} does not match its caller, algorithm and commit "
                f"({pool.caller}, {pool.algorithm}, {pool.commit[:12]})")
    if pool.replicas < 1 or pool.gpu < 0:
        return f"pool {pool.id}: replicas must be >= 1 and gpu >= 0"
    if pool.processor not in ("cpu", "gpu"):
        return f"pool {pool.id}: processor must be cpu or gpu, got {pool.processor!r}"
    return None


def _rederive(plan: Plan, live: LiveState, end: DesiredState) -> list[Diagnostic]:
    """The planner's own actions from `live` to `end` must be the plan's, in its order."""
    from reconciler.plan import diff
    from reconciler.plan.order import mark_moves

    expected = order(mark_moves(diff.actions_for(diff.pair(end, live)), end.pools))
    problems: list[Diagnostic] = []
    for index in range(max(len(expected), len(plan.actions))):
        mine = plan.actions[index] if index < len(plan.actions) else None
        want = expected[index] if index < len(expected) else None
        if mine is None or want is None or _key(mine) != _key(want):
            problems.append(Diagnostic(
                f"actions[{index}]: the plan says {_label(mine)}, but from the live state to "
                f"the plan's own end state the planner makes {_label(want)}"))
        elif mine.before != want.before:
            problems.append(Diagnostic(
                f"actions[{index}] ({_label(mine)}): its `object.before` is not the live "
                f"object"))
        if len(problems) >= MAX_LISTED:
            break
    return problems


def _key(action: Action) -> tuple[str, str, str, str | None]:
    return (str(action.op), str(action.kind), action.id, action.wait_for)


def _label(action: Action | None) -> str:
    if action is None:
        return "nothing"
    waits = f" (waiting for {action.wait_for})" if action.wait_for else ""
    return f"{action.op} {action.kind} {action.id}{waits}"


def _access(plan: Plan, config: Config) -> list[Diagnostic]:
    """Private and unpublished versions only for their owner and its members."""
    problems: list[Diagnostic] = []
    for action in plan.actions:
        pool = action.after
        if not isinstance(pool, WarmPool) or pool.caller == pool.owner:
            continue
        visibility = pool.visibility
        algorithm = config.algorithms.get(pool.algorithm)
        version = next((v for v in algorithm.versions if v.commit == pool.commit),
                       None) if algorithm else None
        if version is not None:
            visibility = str(version.visibility)
        if visibility != Visibility.PUBLIC and not may_access(pool.caller, pool.owner,
                                                               config.accounts):
            problems.append(Diagnostic(
                f"pool {pool.id}: {pool.caller} may not use {visibility} version "
                f"{pool.version or pool.commit[:12]} of {pool.algorithm}: only {pool.owner} "
                f"and its members may"))
    return problems


def _cap(problems: list[Diagnostic]) -> list[Diagnostic]:
    if len(problems) <= MAX_LISTED:
        return problems
    rest = len(problems) - MAX_LISTED
    return problems[:MAX_LISTED] + [Diagnostic(f"... and {rest} more")]
