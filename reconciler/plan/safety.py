"""Mass-delete protection (SPEC.md section 3, Safety). Pure.

Only pool deletes that are not version moves count: a move replaces a pool,
it does not take warm capacity away from anyone. An empty desired state
against a live state with pools is always refused without
--allow-mass-delete, whatever the limits say, because it is the classic
symptom of pointing the reconciler at the wrong directory or an empty
checkout.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.config.model import Safety
from reconciler.errors import Diagnostic, Severity
from reconciler.plan.plans import Action, Op
from reconciler.states import DesiredState, LiveState, ResourceKind

HINT = "pass --allow-mass-delete if that is intended"


def pool_deletions(actions: Sequence[Action]) -> list[Action]:
    """Pool deletes that take capacity away (not the old side of a move)."""
    return [a for a in actions if a.op is Op.DELETE and a.kind is ResourceKind.WARM_POOL
            and not a.wait_for]


def check_safety(desired: DesiredState, live: LiveState, actions: Sequence[Action],
                 safety: Safety, *, allow_mass_delete: bool) -> tuple[list[Diagnostic],
                                                                      list[Diagnostic]]:
    """(errors, warnings) for the plan's deletions against the Settings limits."""
    deleting = len(pool_deletions(actions))
    live_count = len(live.pools)
    problem = _problem(desired, live_count, deleting, safety)
    if problem is None:
        return [], []
    if allow_mass_delete:
        return [], [Diagnostic(f"{problem}; allowed by --allow-mass-delete",
                               severity=Severity.WARNING)]
    return [Diagnostic(f"{problem}; {HINT}")], []


def _problem(desired: DesiredState, live_count: int, deleting: int,
             safety: Safety) -> str | None:
    if not deleting:
        return None
    if not desired.pools and live_count:
        return (f"the configuration has no warm pools: this plan would delete all "
                f"{live_count} live pool{'s' if live_count != 1 else ''}")
    if deleting > safety.max_deletions:
        return (f"this plan deletes {deleting} warm pools, more than safety.maxDeletions "
                f"({safety.max_deletions})")
    if deleting * 100 > safety.max_delete_percent * live_count:
        share = deleting * 100 // live_count
        return (f"this plan deletes {deleting} of {live_count} warm pools ({share} %), more "
                f"than safety.maxDeletePercent ({safety.max_delete_percent} %)")
    return None


def safety_options(safety: Safety) -> dict[str, int]:
    """How a plan records Settings.safety in its options (`apply --plan` re-checks with it)."""
    return {"maxDeletions": safety.max_deletions, "maxDeletePercent": safety.max_delete_percent}
