"""The segment-tree first fit: same answers as a linear scan, without its cost."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from plan.builders import desired_of, node, pool
from reconciler.plan import make_plan
from reconciler.plan.placement import NodeTree
from reconciler.states import LiveState

shapes = st.tuples(st.integers(1, 4000), st.integers(1, 8), st.integers(0, 2), st.just(1))


def linear_first_fit(free, need):
    for index, room in enumerate(free):
        if all(room[d] >= need[d] for d in range(4)):
            return index
    return None


@settings(max_examples=100, deadline=None)
@given(nodes=st.lists(st.tuples(st.integers(0, 16_000), st.integers(0, 32), st.integers(0, 4),
                                st.integers(0, 10)), min_size=0, max_size=12),
       groups=st.lists(st.tuples(shapes, st.integers(1, 6)), max_size=12))
def test_tree_matches_a_linear_first_fit_and_never_overcommits(nodes, groups):
    tree = NodeTree([node(f"n{i}", f"{cpu}m", f"{mem}Gi", gpu, pods)
                     for i, (cpu, mem, gpu, pods) in enumerate(nodes)])
    for need, count in groups:
        need = (need[0], need[1] * 2**30, need[2], 1)
        free_before = [list(f) for f in tree.free]
        expected_first = linear_first_fit(free_before, need)
        assert tree.first_fit(need) == expected_first
        left, assignment = tree.place(need, count)
        assert left + sum(batch for _, batch in assignment) == count
        if assignment:
            assert assignment[0][0] == expected_first
        for free in tree.free:
            assert min(free) >= 0


def test_placement_is_not_quadratic_in_pools_and_nodes():
    # 10,000 pools over 1,000 nodes: a pools x nodes scan would make ~10 million fit
    # checks (tens of seconds in Python); the tree makes ~10,000 x log2(1,000).
    nodes = [node(f"n{i:04d}", cpu="10", memory="20Gi", pods=10) for i in range(1000)]
    desired = desired_of(*(pool(f"c{i:05d}", cpu="1", memory="1Gi") for i in range(10_000)))
    start = time.perf_counter()
    plan = make_plan(desired, LiveState(), nodes, runtime="t")
    elapsed = time.perf_counter() - start
    assert plan.applyable, plan.errors[:2]
    assert elapsed < 5, f"planning 10,000 pools on 1,000 nodes took {elapsed:.1f} s"


def per_pool_shortfalls(nodes, pools):
    """The reference: place each pool on its own, in first-fit-decreasing order."""
    from reconciler.plan import capacity, placement

    cluster = capacity._Cluster(nodes)
    short = []
    for each in sorted(pools, key=capacity._decreasing):
        need = placement.replica_need(each)
        left, _ = cluster.trees[capacity._processor(each)].place(need, each.replicas)
        if left:
            short.append((each.id, left))
    return short


@settings(max_examples=100, deadline=None)
@given(nodes=st.lists(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(0, 2),
                                st.integers(1, 6)), min_size=1, max_size=5),
       pools=st.lists(st.tuples(st.sampled_from(["500m", "1", "2"]),
                                st.sampled_from(["1Gi", "2Gi"]), st.integers(0, 1),
                                st.integers(1, 4)), max_size=15))
def test_placing_runs_of_one_shape_at_once_leaves_what_pool_by_pool_would(nodes, pools):
    from reconciler.plan import capacity

    cluster_nodes = [node(f"n{i}", str(cpu), f"{mem}Gi", gpu, slots)
                     for i, (cpu, mem, gpu, slots) in enumerate(nodes)]
    warm = [pool(f"c{i:02d}", cpu=cpu, memory=mem, replicas=replicas,
                 processor="gpu" if gpu else "cpu", gpu=gpu)
            for i, (cpu, mem, gpu, replicas) in enumerate(pools)]
    grouped = capacity._place_by_shape(capacity._Cluster(cluster_nodes),
                                       capacity._shapes(capacity.totals(warm).specs), warm)
    assert [(p.id, left) for p, _, left in grouped] == per_pool_shortfalls(cluster_nodes, warm)
