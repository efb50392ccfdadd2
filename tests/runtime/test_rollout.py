"""The agent's pure decisions: quotas and one rolling step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from localkit import make_pool, make_site

from reconciler.runtimes.local.rollout import Rep, allot, step
from reconciler.states import Quota


def reps(*items: tuple[int, str, str]) -> list[Rep]:
    return [Rep(i, h, s) for i, h, s in items]


def test_fresh_pool_starts_everything() -> None:
    assert step("h1", 3, [], in_place=False, room=99, may_start=True).starts == 3


def test_roll_surges_one_and_stops_old_only_when_enough_are_ready() -> None:
    old = [(1, "h0", "ready"), (2, "h0", "ready")]
    first = step("h1", 2, reps(*old), in_place=False, room=99, may_start=True)
    assert (first.starts, first.stops) == (1, ())
    warming = step("h1", 2, reps(*old, (3, "h1", "warming")), in_place=False, room=99,
                   may_start=True)
    assert (warming.starts, warming.stops) == (0, ())
    ready = step("h1", 2, reps(*old, (3, "h1", "ready")), in_place=False, room=99,
                 may_start=True)
    assert ready.stops == (1,) and ready.starts == 1


def test_failing_new_replica_never_stops_the_old_ones() -> None:
    old = [(1, "h0", "ready"), (2, "h0", "ready")]
    backing_off = step("h1", 2, reps(*old), in_place=False, room=99, may_start=False)
    assert (backing_off.starts, backing_off.stops) == (0, ())


def test_in_place_replaces_one_at_a_time() -> None:
    old = [(1, "h0", "ready"), (2, "h0", "ready")]
    first = step("h1", 2, reps(*old), in_place=True, room=99, may_start=True)
    assert (first.starts, first.stops) == (1, (1,))


def test_scale_down_prefers_replicas_not_yet_ready() -> None:
    current = reps((1, "h", "ready"), (2, "h", "ready"), (3, "h", "warming"))
    assert step("h", 2, current, in_place=False, room=99, may_start=True).stops == (3,)


def test_quota_caps_engines_older_pools_first(tmp_path: Path) -> None:
    # Pools come oldest first (the store's creation order), whatever their ids.
    site = make_site(tmp_path)
    a = make_pool(site, replicas=2, commit="a" * 40)
    b = make_pool(site, replicas=2, commit="b" * 40)
    result = allot([b, a], {"alice": Quota("alice", 3)})
    assert result[b.id].replicas == 2 and result[b.id].error is None
    assert result[a.id].replicas == 1
    assert "maxEngines 3" in (result[a.id].error or "")


def test_a_moved_to_pool_gets_one_replica_per_replica_handed_over(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    old = make_pool(site, replicas=2, commit="b" * 40)
    new = make_pool(site, replicas=2, commit="a" * 40)  # a lower id than the old pool
    quotas = {"alice": Quota("alice", 2)}
    for left, expected in ((2, 0), (1, 1), (0, 2)):
        result = allot([replace(old, replicas=left), new], quotas)
        assert (result[old.id].replicas, result[new.id].replicas) == (left, expected)
