"""The caller's quota during make-before-break moves and rolling replacements."""

from __future__ import annotations

import dataclasses

from plan.builders import (
    account,
    account_limit,
    algo,
    big_nodes,
    desired_of,
    digest_of,
    live_of,
    make_config,
    pool,
    resv,
    ver,
)
from reconciler.desired import compile_config
from reconciler.plan import Op, make_plan
from reconciler.plan.plans import Plan
from reconciler.states import DesiredState, LiveState, Quota, WarmPool

CAP = Quota("alice", 3, None, "alice-capacity")


def move(replicas: int = 2, quota: Quota = CAP, **fields: object
         ) -> tuple[WarmPool, WarmPool, DesiredState, LiveState]:
    """alice's latest-public reservation moves from 1.2.0 to 1.3.0."""
    old = pool("alice", version="1.2.0", replicas=replicas, **fields)
    new = pool("alice", version="1.3.0", replicas=replicas, **fields)
    return old, new, desired_of(new, quotas=(quota,)), live_of(desired_of(old, quotas=(quota,)))


def plan(desired: DesiredState, live: LiveState, *, allow: bool = False,
         nodes: bool = True) -> Plan:
    return make_plan(desired, live, big_nodes() if nodes else None, runtime="test",
                     allow_reduced_capacity=allow)


def test_a_move_over_the_quota_is_refused_with_the_numbers() -> None:
    old, new, desired, live = move()
    refused = plan(desired, live)
    assert not refused.applyable
    assert [e.message for e in refused.errors] == [
        f"pool {new.id} replaces pool {old.id} make-before-break: account alice would run 4 "
        f"warm replicas during the move, over its maxEngines 3 (capacity limit "
        f"alice-capacity); raise maxEngines to 4, or pass --allow-reduced-capacity to hand "
        f"over one replica at a time (replicas-1 kept warm)"]
    assert refused.errors[0].path == new.id


def test_allow_reduced_capacity_hands_over_in_place() -> None:
    old, new, desired, live = move()
    allowed = plan(desired, live, allow=True)
    assert allowed.applyable and not allowed.errors
    (warning,) = allowed.warnings
    assert warning.message.endswith(
        "handing over one replica at a time, keeping replicas-1 warm (--allow-reduced-capacity)")
    assert [(a.op, a.id, a.wait_for, a.in_place) for a in allowed.actions] == [
        (Op.CREATE, new.id, None, True), (Op.DELETE, old.id, new.id, True)]


def test_a_move_with_headroom_is_fine() -> None:
    _, _, desired, live = move(quota=Quota("alice", 4, None, "alice-capacity"))
    fine = plan(desired, live)
    assert fine.applyable and not fine.warnings
    assert not any(a.in_place for a in fine.actions)


def test_the_peak_counts_the_callers_other_pools_and_no_other_callers() -> None:
    old, new, _, _ = move(quota=Quota("alice", 5, None, "cap"))
    other = pool("alice", "acme/vision", replicas=1)
    bob = pool("bob", replicas=5)
    quotas = (Quota("alice", 5, None, "cap"),)
    live = live_of(desired_of(old, other, bob, quotas=quotas))
    assert plan(desired_of(new, other, bob, quotas=quotas), live).applyable  # 2 + 1 + 2 = 5
    bigger = pool("alice", "acme/vision", replicas=2)
    refused = plan(desired_of(new, bigger, bob, quotas=quotas),
                   live_of(desired_of(old, bigger, bob, quotas=quotas)))
    assert "would run 6 warm replicas during the move, over its maxEngines 5" in (
        refused.errors[0].message)


def test_several_moves_of_one_caller_add_up_in_id_order() -> None:
    quotas = (Quota("alice", 6, None, "cap"),)
    olds = [pool("alice", f"acme/{name}", "1.0.0", replicas=2) for name in ("a", "b")]
    news = [pool("alice", f"acme/{name}", "2.0.0", replicas=2) for name in ("a", "b")]
    result = plan(desired_of(*news, quotas=quotas), live_of(desired_of(*olds, quotas=quotas)),
                  allow=True)
    # 4 desired + 2 of acme/a's old side = 6 fits; acme/b's old side would make 8.
    assert [(a.id, a.in_place) for a in result.actions if a.in_place] == [
        (news[1].id, True), (olds[1].id, True)]
    assert "would run 8 warm replicas" in result.warnings[0].message


def test_a_gpu_quota_surge() -> None:
    quota = Quota("alice", 10, 4, "alice-capacity")
    old, new, desired, live = move(quota=quota, processor="gpu", gpu=2)
    refused = plan(desired, live)
    assert [e.message for e in refused.errors] == [
        f"pool {new.id} replaces pool {old.id} make-before-break: account alice would use 8 "
        f"GPUs during the move, over its maxGpus 4 (capacity limit alice-capacity); raise "
        f"maxGpus to 8, or pass --allow-reduced-capacity to hand over one replica at a time "
        f"(replicas-1 kept warm)"]
    both = plan(*move(quota=Quota("alice", 3, 4, "c"), processor="gpu", gpu=2)[2:])
    assert ("would run 4 warm replicas and use 8 GPUs during the move, over its maxEngines 3 "
            "and maxGpus 4 (capacity limit c); raise maxEngines to 4 and maxGpus to 8, or "
            "pass") in both.errors[0].message


def test_a_reload_at_the_quota_is_refused_or_runs_in_place() -> None:
    quota = Quota("alice", 2, None, "alice-capacity")
    before = pool("alice", replicas=2)
    after = pool("alice", replicas=2, model_digest=digest_of("m2"))
    desired, live = desired_of(after, quotas=(quota,)), live_of(desired_of(before,
                                                                          quotas=(quota,)))
    refused = plan(desired, live)
    assert [e.message for e in refused.errors] == [
        f"pool {after.id} reloads one replica at a time and needs one extra replica: account "
        f"alice would run 3 warm replicas meanwhile, over its maxEngines 2 (capacity limit "
        f"alice-capacity); raise maxEngines to 3, or pass --allow-reduced-capacity to replace "
        f"in place, keeping replicas-1 warm"]
    allowed = plan(desired, live, allow=True)
    assert allowed.applyable and [(a.op, a.in_place) for a in allowed.actions] == [
        (Op.RELOAD, True)]
    roomy = (Quota("alice", 3, None, "alice-capacity"),)
    assert plan(desired_of(after, quotas=roomy), live_of(desired_of(before, quotas=roomy))
                ).applyable


def test_a_drift_repair_without_room_is_held_back_not_refused() -> None:
    """A hand edit of a pod template at the quota: reverting it replaces the replicas and
    needs one more. No commit asked for it, so it must not refuse the rest of the plan
    (the daemon would apply no commit at all): a warning, and the repair left out."""
    quota = Quota("alice", 2, None, "alice-capacity")
    wanted = pool("alice", replicas=2)
    edited = dataclasses.replace(wanted, drift="containers[engine].command is [sleep]",
                                 drift_rolls=True)
    other = pool("bob", "acme/vision")
    desired = desired_of(wanted, other, quotas=(quota,))
    live = live_of(desired_of(edited, quotas=(quota,)))
    held = plan(desired, live)
    assert held.applyable
    assert [(a.op, a.id) for a in held.actions if a.id != "bob"] == [
        (Op.CREATE, other.id)], "bob's new pool goes ahead; alice's repair is held"
    (warning,) = [w.message for w in held.warnings if "drift" in w.message]
    assert warning.startswith(f"pool {wanted.id} is replaced one replica at a time and needs "
                              "one extra replica: account alice would run 3 warm replicas")
    assert "the drift is not reverted (the rest of the plan goes ahead)" in warning
    allowed = plan(desired, live, allow=True)  # reverted in place, replicas-1 warm
    assert [(a.op, a.id, a.in_place) for a in allowed.actions if a.id == wanted.id] == [
        (Op.UPDATE, wanted.id, True)]
    # drift outside the pod template replaces nothing: reverted without any room
    label = dataclasses.replace(edited, drift_rolls=False)
    repaired = plan(desired, live_of(desired_of(label, quotas=(quota,))))
    assert repaired.applyable and wanted.id in [a.id for a in repaired.actions]


def test_an_update_adding_gpus_checks_max_gpus() -> None:
    quota = Quota("alice", 10, 4, "cap")
    before = pool("alice", "acme/vision", replicas=2, processor="gpu", gpu=1)
    after = pool("alice", "acme/vision", replicas=2, processor="gpu", gpu=2)
    refused = plan(desired_of(after, quotas=(quota,)), live_of(desired_of(before,
                                                                         quotas=(quota,))))
    assert "is replaced one replica at a time and needs one extra replica: account alice " \
           "would use 6 GPUs meanwhile, over its maxGpus 4" in refused.errors[0].message


def test_diff_mode_without_nodes_still_checks_quota_surges() -> None:
    _, _, desired, live = move()
    assert "over its maxEngines 3" in plan(desired, live, nodes=False).errors[0].message
    allowed = plan(desired, live, nodes=False, allow=True)
    assert allowed.applyable and all(a.in_place for a in allowed.actions)


def test_a_caller_over_its_quota_in_the_steady_state_gets_one_error_only() -> None:
    old, new, _, _ = move()
    quotas = (Quota("alice", 1, None, "cap"),)
    refused = plan(desired_of(new, quotas=quotas), live_of(desired_of(old, quotas=quotas)))
    assert [e.message for e in refused.errors] == [
        "account alice: 2 warm replicas exceed maxEngines 1 (capacity limit cap)"]


def test_a_deferred_handover_re_plans_from_the_smaller_old_side() -> None:
    # After one replica was handed over: the new pool exists (2), the old one has 1 left.
    old, new, desired, _ = move(quota=Quota("alice", 2, None, "alice-capacity"))
    partway = LiveState(desired.tenants, desired.quotas,
                        (new, pool("alice", version="1.2.0", replicas=1)), revision="r2")
    again = plan(desired, partway, allow=True)
    assert [(a.op, a.id, a.wait_for, a.in_place) for a in again.actions] == [
        (Op.DELETE, old.id, new.id, True)]
    assert "would run 3 warm replicas" in again.warnings[0].message
    # With one more engine of headroom the rest is an ordinary make-before-break.
    roomy = (Quota("alice", 3, None, "alice-capacity"),)
    plain = plan(desired_of(new, quotas=roomy),
                 LiveState(desired.tenants, roomy, partway.pools, revision="r3"))
    assert plain.applyable and not plain.actions[0].in_place


def test_the_config_examples_scenario() -> None:
    """alice: maxEngines 3, a latest-public reservation of 2; acme publishes 1.3.0."""
    def config(*labels: str) -> DesiredState:
        return compile_config(make_config(
            account("acme", "alice"), account("alice"),
            algo("acme/sentiment", *(ver(label, model=label) for label in labels)),
            resv("alice-sentiment", "alice", "acme/sentiment", replicas=2),
            account_limit("alice-capacity", "alice", 3)))
    before = config("1.2.0")
    live = LiveState(before.tenants, before.quotas, before.pools, revision="r1")
    refused = plan(config("1.2.0", "1.3.0"), live)
    assert "account alice would run 4 warm replicas during the move, over its maxEngines 3 " \
           "(capacity limit alice-capacity); raise maxEngines to 4" in refused.errors[0].message
