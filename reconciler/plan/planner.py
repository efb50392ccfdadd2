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
from collections.abc import Sequence
from typing import Any

from reconciler.config.model import Safety
from reconciler.errors import Diagnostic, Severity
from reconciler.plan import diff, order
from reconciler.plan.capacity import check_capacity, quota_errors
from reconciler.plan.fingerprint import check_fresh, fingerprint
from reconciler.plan.plans import Action, Plan
from reconciler.plan.safety import check_safety, safety_options
from reconciler.plan.usage import plan_capacity
from reconciler.states import DesiredState, LiveState, Node, ResourceKind

__all__ = ["check_fresh", "fingerprint", "make_plan", "plan_actions"]


def plan_actions(desired: DesiredState, live: LiveState) -> tuple[Action, ...]:
    """The ordered actions that turn `live` into `desired`, before any checks."""
    actions = diff.actions_for(diff.pair(desired, live))
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
) -> Plan:
    """Diff, order, check quotas and their surge, place on nodes (skipped when
    `nodes` is None, as in `diff` between two commits), apply safety limits.
    Never raises for a refused plan: errors go into Plan.errors (Plan.applyable
    is then False)."""
    actions = plan_actions(desired, live)
    errors = quota_errors(desired)
    report = check_capacity(desired, actions, nodes,
                            allow_reduced_capacity=allow_reduced_capacity)
    errors += report.errors
    warnings = list(report.warnings)
    warnings += [Diagnostic(text, severity=Severity.WARNING) for text in live.warnings]
    if report.in_place:
        actions = tuple(_in_place(a, report.in_place) for a in actions)
    safety_errors, safety_warnings = check_safety(desired, live, actions, safety or Safety(),
                                                  allow_mass_delete=allow_mass_delete)
    errors += safety_errors
    warnings += safety_warnings
    return Plan(
        runtime=runtime,
        fingerprint=fingerprint(desired, live.revision),
        actions=actions,
        errors=tuple(errors),
        warnings=tuple(warnings),
        source_path=source_path,
        source_commit=source_commit,
        live_revision=live.revision,
        options=_options(safety, allow_mass_delete, allow_reduced_capacity),
        capacity=plan_capacity(desired, live, actions, nodes),
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
