"""Plan stage: DesiredState x LiveState x nodes -> Plan. Pure."""

from reconciler.plan.planner import check_fresh, fingerprint, make_plan
from reconciler.plan.plans import Action, Change, Op, Plan

__all__ = ["Action", "Change", "Op", "Plan", "check_fresh", "fingerprint", "make_plan"]
