"""Build the Plan value: diff, version moves, capacity, safety, ordering. Pure.

The steps, each in its own module:
  diff.py         pair desired with live, one action per differing pair
  order.py        mark version moves (make-before-break), one total order
  capacity.py     quotas, placement on nodes, transient surge
  safety.py       mass-delete limits
  fingerprint.py  the plan's fingerprint and the staleness check
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from reconciler.config.model import Safety
from reconciler.errors import Diagnostic, Severity
from reconciler.plan import diff, order
from reconciler.plan.capacity import Totals, check_capacity, quota_errors, totals
from reconciler.plan.fingerprint import RowCache, check_fresh, fingerprint
from reconciler.plan.plans import Action, Plan
from reconciler.plan.safety import check_safety, safety_options
from reconciler.plan.usage import plan_capacity
from reconciler.states import DesiredState, LiveState, Node, ResourceKind

__all__ = ["check_fresh", "fingerprint", "make_plan", "plan_actions"]


def plan_actions(desired: DesiredState, live: LiveState,
                 candidates: Collection[str] | None = None) -> tuple[Action, ...]:
    """The ordered actions that turn `live` into `desired`, before any checks.
    `candidates`: see make_plan."""
    actions = diff.actions_for(diff.pair(desired, live, changed_only=True, pool_ids=candidates))
    return order.order(order.mark_moves(actions, desired.pools))


def make_plan(
    desired: DesiredState,
    live: LiveState,
    nodes: Sequence[Node] | None,
    *,
    runtime: str,
    safety: Safety | None = None,  # None: the defaults (10 deletions, 50 %)
    source_path: str = "",
    source_commit: str | None = None,
    allow_mass_delete: bool = False,
    allow_reduced_capacity: bool = False,
    candidates: Collection[str] | None = None,
    rows: RowCache | None = None,
    sums: Totals | None = None,
    live_sums: Totals | None = None,
) -> Plan:
    """Diff, order, check quotas and their surge, place on nodes (skipped when
    `nodes` is None, as in `diff` between two commits), apply safety limits.
    Never raises for a refused plan: errors go into Plan.errors (Plan.applyable
    is then False).

    For the daemon, which remembers what it applied: `candidates` are the only
    pool ids whose desired and live objects may differ (the caller knows the
    others are equal; both sides' pools sorted by id, as compile and observe give
    them), so only they are compared; `rows` caches the fingerprint's pool rows
    between plans; `sums` are capacity.totals(desired.pools), kept up to date by the
    caller, and `live_sums` the same of live.pools. None of them changes the result."""
    actions = plan_actions(desired, live, candidates)
    if sums is None:
        sums = totals(desired.pools)
    errors = quota_errors(desired, sums)
    report = check_capacity(desired, actions, nodes,
                            allow_reduced_capacity=allow_reduced_capacity, sums=sums)
    errors += report.errors
    warnings = list(report.warnings)
    warnings += [Diagnostic(text, severity=Severity.WARNING) for text in live.warnings]
    if report.in_place:
        actions = tuple(_in_place(a, report.in_place) for a in actions)
    if report.held:  # drift repairs without room for their surge: warned, left out
        actions = tuple(a for a in actions
                        if a.kind is not ResourceKind.WARM_POOL or a.id not in report.held)
    safety_errors, safety_warnings = check_safety(desired, live, actions, safety or Safety(),
                                                  allow_mass_delete=allow_mass_delete)
    errors += safety_errors
    warnings += safety_warnings
    return Plan(
        runtime=runtime,
        fingerprint=fingerprint(desired, live.revision, rows),
        actions=actions,
        errors=tuple(errors),
        warnings=tuple(warnings),
        source_path=source_path,
        source_commit=source_commit,
        live_revision=live.revision,
        options=_options(safety, allow_mass_delete, allow_reduced_capacity),
        capacity=plan_capacity(desired, live, actions, nodes, before_sums=live_sums,
                               after_sums=sums),
    )


def _options(safety: Safety | None, allow_mass_delete: bool,
             allow_reduced_capacity: bool) -> dict[str, Any]:
    """What the plan was made with, as `apply --plan` re-checks it; Settings.safety only
    when it is not the default (absent: the defaults)."""
    options: dict[str, Any] = {"allowMassDelete": allow_mass_delete,
                               "allowReducedCapacity": allow_reduced_capacity}
    if safety is not None and safety != Safety():
        options["safety"] = safety_options(safety)
    return options


def _in_place(action: Action, ids: set[str]) -> Action:
    if action.kind is ResourceKind.WARM_POOL and action.id in ids:
        return dataclasses.replace(action, in_place=True)
    return action
