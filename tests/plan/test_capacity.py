"""Capacity: quotas, placement failures with the shortfall named, surge and its fallback."""

from __future__ import annotations

from plan.builders import desired_of, digest_of, live_of, node, pool
from reconciler.plan import Op, make_plan
from reconciler.plan.placement import NodeTree
from reconciler.states import LiveState, Quota


def messages(diagnostics):
    return [d.message for d in diagnostics]


def gpu_pool(caller="alice", replicas=3, gpu=2, **kw):
    return pool(caller, "acme/vision", processor="gpu", gpu=gpu, replicas=replicas, **kw)


def test_gpu_shortfall_is_named():
    desired = desired_of(gpu_pool())
    nodes = [node("cpu"), node("gpu-a", gpu=2), node("gpu-b", gpu=2)]
    plan = make_plan(desired, LiveState(), nodes, runtime="test")
    assert not plan.applyable
    assert messages(plan.errors) == [
        f"pool {gpu_pool().id} needs 2 GPUs per replica; 1 of 3 replicas does not fit: "
        f"4 GPUs allocatable on gpu nodes, 6 needed"]


def test_all_replicas_fail_without_gpu_nodes():
    plan = make_plan(desired_of(gpu_pool(replicas=2)), LiveState(), [node("cpu")],
                     runtime="test")
    assert messages(plan.errors) == [
        f"pool {gpu_pool().id} needs 2 CPU, 512Mi memory, 2 GPUs per replica; 2 replicas do "
        f"not fit: there are no gpu nodes".replace("2 CPU", "1 CPU")]


def test_gpu_pools_never_land_on_cpu_nodes_nor_cpu_pools_on_gpu_nodes():
    cpu_only = make_plan(desired_of(pool("alice", replicas=2)), LiveState(),
                         [node("gpu", gpu=4)], runtime="test")
    assert "there are no cpu nodes" in cpu_only.errors[0].message


def test_replica_larger_than_any_node():
    plan = make_plan(desired_of(pool("alice", cpu="16")), LiveState(), [node("n", cpu="8")],
                     runtime="test")
    assert messages(plan.errors) == [
        f"pool {pool('alice').id} needs 16 CPU per replica; 1 replica does not fit: "
        f"the largest cpu node has 8 CPU allocatable, one replica needs 16 CPU"]


def test_memory_and_pods_shortfalls():
    memory = make_plan(desired_of(pool("alice", memory="3Gi", replicas=3)), LiveState(),
                       [node("a", memory="4Gi"), node("b", memory="4Gi")], runtime="test")
    assert messages(memory.errors)[0].endswith(
        "1 of 3 replicas does not fit: 8Gi memory allocatable on cpu nodes, 9Gi needed")
    pods = make_plan(desired_of(pool("alice", replicas=5)), LiveState(), [node("a", pods=4)],
                     runtime="test")
    assert messages(pods.errors)[0].endswith("4 pods allocatable on cpu nodes, 5 needed")


def test_placement_is_by_node_not_by_totals():
    # 2 x 3 CPU replicas: 6 CPU allocatable in total, but no node has room for the second.
    plan = make_plan(desired_of(pool("alice", cpu="3", replicas=2)), LiveState(),
                     [node("a", cpu="4"), node("b", cpu="2")], runtime="test")
    assert "fragmented" in plan.errors[0].message


def test_first_fit_decreasing_packs_what_fits():
    # Largest first: the 3-CPU replicas take a node each, the 1-CPU ones fill the gaps.
    desired = desired_of(pool("a", cpu="3", replicas=2), pool("b", cpu="1", replicas=2))
    plan = make_plan(desired, LiveState(), [node("x", cpu="4"), node("y", cpu="4")],
                     runtime="test")
    assert plan.applyable, plan.errors


def test_node_tree_places_in_batches_and_undoes():
    tree = NodeTree([node("a", cpu="2"), node("b", cpu="4"), node("c", cpu="1")])
    need = (1000, 1, 0, 1)
    left, assignment = tree.place(need, 6)
    assert (left, assignment) == (0, [(0, 2), (1, 4)])
    assert tree.first_fit(need) == 2
    tree.remove(need, assignment)
    assert tree.first_fit((4000, 1, 0, 1)) == 1


def test_quota_errors():
    desired = desired_of(gpu_pool(replicas=3, gpu=1), pool("alice", replicas=2),
                         quotas=(Quota("alice", 4, 2, "alice-cap"),))
    plan = make_plan(desired, LiveState(), None, runtime="test")
    assert messages(plan.errors) == [
        "account alice: 5 warm replicas exceed maxEngines 4 (capacity limit alice-cap)",
        "account alice: 3 GPUs of warm replicas exceed maxGpus 2 (capacity limit alice-cap)"]


def test_nodes_none_skips_placement():
    plan = make_plan(desired_of(gpu_pool(replicas=100)), LiveState(), None, runtime="test")
    assert plan.applyable


def move_case():
    old = pool("alice", version="1.2.0", replicas=2)
    new = pool("alice", version="1.3.0", replicas=2)
    return old, new, desired_of(new), live_of(desired_of(old))


def test_move_surge_that_does_not_fit_is_refused():
    old, new, desired, live = move_case()
    plan = make_plan(desired, live, [node("n", cpu="3")], runtime="test")
    assert not plan.applyable
    (error,) = plan.errors
    assert error.message == (
        f"pool {new.id} replaces pool {old.id} make-before-break, and the 2 old replicas "
        f"(1 CPU, 512Mi memory each) do not fit next to the new pool while it warms up: "
        f"3 CPU allocatable on cpu nodes, 4 needed; pass --allow-reduced-capacity to "
        f"replace in place, keeping replicas-1 warm")


def test_move_surge_with_allow_reduced_capacity_runs_in_place():
    old, new, desired, live = move_case()
    plan = make_plan(desired, live, [node("n", cpu="3")], runtime="test",
                     allow_reduced_capacity=True)
    assert plan.applyable
    assert "replacing in place" in plan.warnings[0].message
    assert [(a.id, a.in_place) for a in plan.actions] == [(new.id, True), (old.id, True)]
    assert plan.options["allowReducedCapacity"] is True


def test_move_surge_that_fits_is_fine():
    _, _, desired, live = move_case()
    assert make_plan(desired, live, [node("n", cpu="4")], runtime="test").applyable


def test_rolling_reload_needs_one_extra_replica():
    live = live_of(desired_of(pool("alice", replicas=3)))
    desired = desired_of(pool("alice", replicas=3, model_digest=digest_of("m2")))
    refused = make_plan(desired, live, [node("n", cpu="3")], runtime="test")
    assert refused.errors[0].message.startswith(
        f"pool {pool('alice').id} reloads one replica at a time and needs room for one extra "
        f"replica (1 CPU, 512Mi memory) meanwhile, which does not fit: 3 CPU allocatable on "
        f"cpu nodes, 4 needed")
    allowed = make_plan(desired, live, [node("n", cpu="3")], runtime="test",
                        allow_reduced_capacity=True)
    assert allowed.applyable and allowed.actions[0].op is Op.RELOAD
    assert allowed.actions[0].in_place
    assert make_plan(desired, live, [node("n", cpu="4")], runtime="test").applyable


def test_update_surge_uses_the_new_shape():
    live = live_of(desired_of(pool("alice", replicas=1)))
    desired = desired_of(pool("alice", replicas=1, cpu="2"))
    plan = make_plan(desired, live, [node("n", cpu="3")], runtime="test")
    assert "is replaced one replica at a time" in plan.errors[0].message


def test_steady_state_failure_is_an_error_even_with_allow_reduced_capacity():
    plan = make_plan(desired_of(pool("alice", cpu="9")), LiveState(), [node("n")],
                     runtime="test", allow_reduced_capacity=True)
    assert not plan.applyable


def test_a_flood_of_placement_failures_is_summarised():
    desired = desired_of(*(pool(f"c{i:03d}", replicas=2) for i in range(100)))
    plan = make_plan(desired, LiveState(), [node("n", cpu="1")], runtime="test")
    assert len(plan.errors) == 21
    assert plan.errors[-1].message == (
        "... and 80 more pools with 160 replicas that do not fit on the cpu nodes")
