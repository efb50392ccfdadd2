"""Pairing, one action per pool, field changes, version moves and the ordering."""

from __future__ import annotations

import dataclasses

from plan.builders import big_nodes, desired_of, digest_of, live_of, pool
from reconciler.plan import Op, make_plan
from reconciler.plan.plans import Change
from reconciler.states import DesiredState, LiveState, Quota, ResourceKind, Tenant


def plan_of(desired, live, **kwargs):
    return make_plan(desired, live, big_nodes(), runtime="test", **kwargs)


def ops(plan):
    return [(str(a.op), str(a.kind), a.id) for a in plan.actions]


def test_empty_live_creates_tenants_quotas_and_pools_in_that_order():
    desired = desired_of(pool("alice", replicas=2), pool("bob"),
                         quotas=(Quota("alice", 4, None, "alice-cap"),))
    plan = plan_of(desired, LiveState())
    assert [str(a.kind) for a in plan.actions] == ["Tenant", "Tenant", "Quota", "WarmPool",
                                                    "WarmPool"]
    first_pool = plan.actions[3]
    assert first_pool.op is Op.CREATE and first_pool.after == desired.pools[0]
    assert first_pool.changes == (Change("replicas", None, 2),)
    assert plan.summary == {"create": 5, "scale": 0, "reload": 0, "update": 0, "delete": 0}


def test_equal_states_give_an_empty_plan():
    desired = desired_of(pool("alice"), pool("bob"), quotas=(Quota("bob", 3),))
    plan = plan_of(desired, live_of(desired))
    assert plan.empty and plan.applyable


def test_display_only_fields_never_make_an_action():
    desired = desired_of(pool("alice", reason="new words", sources=("x",), version="9.9.9",
                              commit=pool("alice").commit, visibility="private"))
    live = live_of(desired_of(pool("alice")))
    assert plan_of(desired, live).empty


def test_one_action_per_pool_update_wins_over_reload_over_scale():
    live = live_of(desired_of(pool("alice", replicas=1)))
    cases = {
        Op.SCALE: pool("alice", replicas=3),
        Op.RELOAD: pool("alice", replicas=3, model_digest=digest_of("m2")),
        Op.UPDATE: pool("alice", replicas=3, model_digest=digest_of("m2"), image="new"),
    }
    for op, wanted in cases.items():
        plan = plan_of(desired_of(wanted), live)
        (action,) = plan.actions
        assert action.op is op
        assert action.before == live.pools[0] and action.after == wanted
    reload_changes = plan_of(desired_of(cases[Op.RELOAD]), live).actions[0].changes
    assert [c.path for c in reload_changes] == ["replicas", "model_digest"]


def test_each_update_field_makes_an_update():
    live = live_of(desired_of(pool("alice")))
    for field, value in [("cpu", "2"), ("memory", "1Gi"), ("image", "other"),
                         ("entrypoint", "m:f"), ("processor", "gpu"), ("gpu", 1)]:
        (action,) = plan_of(desired_of(pool("alice", **{field: value})), live).actions
        assert action.op is Op.UPDATE, field
        assert action.changes == (Change(field, getattr(live.pools[0], field), value),)


def test_tenant_and_quota_updates_and_deletes():
    live = LiveState(tenants=(Tenant("acme", "user"), Tenant("gone")),
                     quotas=(Quota("acme", 5), Quota("gone", 1)), revision="r")
    desired = DesiredState(tenants=(Tenant("acme", "organization"),), quotas=(Quota("acme", 7),))
    plan = plan_of(desired, live)
    assert ops(plan) == [("update", "Tenant", "acme"), ("update", "Quota", "acme"),
                         ("delete", "Quota", "gone"), ("delete", "Tenant", "gone")]
    assert plan.actions[1].changes == (Change("max_engines", 5, 7),)


def test_version_move_creates_before_the_delete_that_waits_for_it():
    old = pool("alice", version="1.2.0", replicas=2)
    new = pool("alice", version="1.3.0", replicas=2)
    plan = plan_of(desired_of(new), live_of(desired_of(old)))
    assert ops(plan) == [("create", "WarmPool", new.id), ("delete", "WarmPool", old.id)]
    delete = plan.actions[1]
    assert delete.wait_for == new.id
    assert delete.reason.startswith(f"moved to 1.3.0 (pool {new.id})")
    assert plan.applyable  # a move is not a mass delete


def test_deferred_move_delete_reappears_until_done():
    old = pool("alice", version="1.2.0")
    new = pool("alice", version="1.3.0")
    live = LiveState((Tenant("alice"),), (), (new, old), revision="r2")
    plan = plan_of(desired_of(new), live)
    (action,) = plan.actions
    assert (action.op, action.id, action.wait_for) == (Op.DELETE, old.id, new.id)


def test_move_target_prefers_the_pool_created_in_this_plan():
    old = pool("alice", version="1.0.0")
    kept = pool("alice", version="0.9.0")
    created = pool("alice", version="2.0.0")
    live = live_of(desired_of(old, kept))
    plan = plan_of(desired_of(kept, created), live)
    delete = next(a for a in plan.actions if a.op is Op.DELETE)
    assert delete.wait_for == created.id


def test_scale_downs_and_plain_deletes_come_before_anything_grows():
    live = live_of(desired_of(pool("a", replicas=5), pool("b", replicas=1),
                              pool("c", "acme/other"), pool("d")))
    desired = desired_of(pool("a", replicas=1), pool("b", replicas=5),
                         pool("c", "acme/other", model_digest=digest_of("m9")),
                         pool("d"), pool("e"))
    plan = plan_of(desired, live)
    pool_ops = [(str(a.op), a.id.split(".")[0]) for a in plan.actions
                if a.kind is ResourceKind.WARM_POOL]
    assert pool_ops == [("scale", "a"), ("reload", "c"), ("create", "e"), ("scale", "b")]


def test_deleted_caller_loses_pools_then_tenant_last():
    live = live_of(desired_of(pool("alice"), pool("bob"), pool("carol")))
    plan = plan_of(desired_of(pool("alice"), pool("bob")), live)
    assert ops(plan) == [("delete", "WarmPool", pool("carol").id), ("delete", "Tenant", "carol")]
    assert "no reservation" in plan.actions[0].reason


def test_a_pool_seen_in_another_namespace_moves_to_its_own_id_not_a_sibling():
    # A namespacePrefix change under an explicit instance: the runtime reports each old
    # pool as ID@OLD-NAMESPACE. With two pools of one caller and algorithm (a pinned
    # version and a canary), each old pool must wait for its own replacement.
    stable = pool("acme", version="1.1.0")
    canary = pool("acme", version="canary")
    live = LiveState(pools=tuple(dataclasses.replace(p, id=f"{p.id}@acct-acme")
                                 for p in (stable, canary)), revision="r")
    plan = plan_of(desired_of(stable, canary), live)
    waits = {a.id: a.wait_for for a in plan.actions if a.op is Op.DELETE}
    assert waits == {f"{stable.id}@acct-acme": stable.id,
                     f"{canary.id}@acct-acme": canary.id}
    moved = next(a for a in plan.actions if a.id == f"{canary.id}@acct-acme")
    assert moved.reason.startswith(f"moved to canary (pool {canary.id})")
