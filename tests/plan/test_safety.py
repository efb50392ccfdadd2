"""Mass-delete protection: maxDeletions, maxDeletePercent, the empty config."""

from __future__ import annotations

from plan.builders import big_nodes, desired_of, live_of, pool
from reconciler.config.model import Safety
from reconciler.plan import make_plan
from reconciler.states import DesiredState


def live_with(count):
    return live_of(desired_of(*(pool(f"c{i:02d}") for i in range(count))))


def keep(count):
    return desired_of(*(pool(f"c{i:02d}") for i in range(count)))


def test_within_limits_is_applyable():
    plan = make_plan(keep(15), live_with(20), big_nodes(), runtime="t")
    assert plan.applyable and plan.summary["delete"] == 10  # 5 pools, 5 tenants


def test_more_than_max_deletions_is_refused_unless_allowed():
    plan = make_plan(keep(9), live_with(20), big_nodes(), runtime="t")
    assert not plan.applyable
    assert plan.errors[0].message == (
        "this plan deletes 11 warm pools, more than safety.maxDeletions (10); "
        "pass --allow-mass-delete if that is intended")
    allowed = make_plan(keep(9), live_with(20), big_nodes(), runtime="t", allow_mass_delete=True)
    assert allowed.applyable and "allowed by --allow-mass-delete" in allowed.warnings[0].message
    assert allowed.options == {"allowMassDelete": True, "allowReducedCapacity": False}


def test_more_than_max_delete_percent_is_refused():
    plan = make_plan(keep(1), live_with(4), big_nodes(), runtime="t")
    assert plan.errors[0].message.startswith(
        "this plan deletes 3 of 4 warm pools (75 %), more than safety.maxDeletePercent (50 %)")
    exactly_half = make_plan(keep(2), live_with(4), big_nodes(), runtime="t")
    assert exactly_half.applyable


def test_settings_limits_apply():
    plan = make_plan(keep(3), live_with(4), big_nodes(), runtime="t",
                     safety=Safety(max_deletions=0, max_delete_percent=100))
    assert "safety.maxDeletions (0)" in plan.errors[0].message


def test_empty_config_never_deletes_everything_silently():
    lenient = Safety(max_deletions=1000, max_delete_percent=100)
    plan = make_plan(DesiredState(), live_with(1), big_nodes(), runtime="t", safety=lenient)
    assert plan.errors[0].message == (
        "the configuration has no warm pools: this plan would delete all 1 live pool; "
        "pass --allow-mass-delete if that is intended")
    allowed = make_plan(DesiredState(), live_with(1), big_nodes(), runtime="t",
                        allow_mass_delete=True)
    assert allowed.applyable and [str(a.op) for a in allowed.actions] == ["delete", "delete"]


def test_moves_do_not_count_as_deletions():
    live = live_of(desired_of(*(pool(f"c{i:02d}", version="1.0.0") for i in range(12))))
    desired = desired_of(*(pool(f"c{i:02d}", version="2.0.0") for i in range(12)))
    plan = make_plan(desired, live, big_nodes(), runtime="t")
    assert plan.applyable and plan.summary == {"create": 12, "scale": 0, "reload": 0,
                                               "update": 0, "delete": 12}
