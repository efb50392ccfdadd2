"""STUB (issue 3 replaces this): build the Plan value."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.config.model import Safety
from reconciler.plan.plans import Plan
from reconciler.states import DesiredState, LiveState, Node


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
    """Diff, order, place on nodes (skipped when `nodes` is None, as in `diff`
    between two commits), apply safety limits. Never raises for a
    refused plan: errors go into Plan.errors (Plan.applyable is then False)."""
    raise NotImplementedError


def fingerprint(desired: DesiredState, live_revision: str) -> str:
    """Stable hash of the desired state and the observed live revision."""
    raise NotImplementedError


def check_fresh(plan: Plan, live: LiveState) -> None:
    """Raise StalePlan (saying what changed) when `live` no longer matches the plan."""
    raise NotImplementedError
