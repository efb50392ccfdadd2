"""Fingerprints and the staleness check of a saved plan."""

from __future__ import annotations

import dataclasses

import pytest

from plan.builders import big_nodes, desired_of, live_of, pool
from reconciler.errors import StalePlan
from reconciler.plan import check_fresh, fingerprint, make_plan
from reconciler.plan.plans import Plan
from reconciler.states import LiveState


def test_fingerprint_is_stable_and_covers_desired_and_revision():
    desired = desired_of(pool("alice"), pool("bob"))
    assert fingerprint(desired, "r1") == fingerprint(desired_of(pool("bob"), pool("alice")), "r1")
    assert fingerprint(desired, "r1") != fingerprint(desired, "r2")
    assert fingerprint(desired, "r1") != fingerprint(desired_of(pool("alice", replicas=2),
                                                                pool("bob")), "r1")
    assert fingerprint(desired, "r1").startswith("sha256:")


def test_plan_records_fingerprint_and_revision():
    desired = desired_of(pool("alice"))
    plan = make_plan(desired, LiveState(revision="r7"), big_nodes(), runtime="t")
    assert plan.fingerprint == fingerprint(desired, "r7") and plan.live_revision == "r7"


def test_fresh_plan_passes_even_through_its_json_form():
    live = live_of(desired_of(pool("alice", replicas=2)), revision="r1")
    plan = make_plan(desired_of(pool("alice", replicas=3)), live, big_nodes(), runtime="t")
    check_fresh(Plan.from_json(plan.to_json()), live)


def test_stale_plan_says_what_changed():
    live = live_of(desired_of(pool("alice", replicas=2)), revision="r1")
    plan = make_plan(desired_of(pool("alice", replicas=4), pool("bob")), live, big_nodes(),
                     runtime="t")
    moved_on = LiveState(live.tenants, live.quotas,
                         (dataclasses.replace(live.pools[0], replicas=3), pool("bob")),
                         revision="r2")
    with pytest.raises(StalePlan) as caught:
        check_fresh(plan, moved_on)
    assert str(caught.value) == (
        f"plan is stale: the live state changed since it was made (pool {pool('bob').id}: "
        f"created since the plan; pool {pool('alice').id}: replicas 2 -> 3); "
        f"run `reconciler plan` again")


def test_stale_plan_without_a_visible_difference_names_the_revisions():
    live = live_of(desired_of(pool("alice")), revision="r1")
    plan = make_plan(desired_of(pool("alice")), live, big_nodes(), runtime="t")
    with pytest.raises(StalePlan, match=r"revision r1 -> r2"):
        check_fresh(plan, dataclasses.replace(live, revision="r2"))


def test_stale_plan_names_deleted_objects():
    live = live_of(desired_of(pool("alice", replicas=2)), revision="r1")
    plan = make_plan(desired_of(pool("alice", replicas=1)), live, big_nodes(), runtime="t")
    with pytest.raises(StalePlan, match="deleted since the plan"):
        check_fresh(plan, LiveState(live.tenants, revision="r2"))
