"""The agent's pure decisions: quotas and one rolling step."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from localkit import make_pool, make_site

from reconciler.runtimes.local.rollout import LIVE, Rep, Step, allot, step
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


def test_a_roll_with_room_for_one_surge_stops_one_old_replica_not_two() -> None:
    """want 2, the quota allows 3: the new replica is ready, so ONE old one goes as excess.
    That stop frees the slot the next new replica takes; a second old one must stay."""
    current = reps((1, "A", "ready"), (2, "A", "ready"), (3, "B", "ready"))
    decision = step("B", 2, current, in_place=False, room=0, may_start=True)
    assert decision == Step(starts=1, stops=(1,))


@dataclass
class Pool:
    """A simulated pool: replica rows as the agent sees them, and the caller's quota."""

    want: int
    quota: int
    current: str = "h0"
    reps: list[Rep] = field(default_factory=list)
    next_id: int = 1

    def add(self, spec_hash: str, state: str) -> None:
        self.reps.append(Rep(self.next_id, spec_hash, state))
        self.next_id += 1

    @property
    def live(self) -> int:
        return sum(1 for r in self.reps if r.state in LIVE)

    @property
    def ready(self) -> int:  # serving, whatever spec: what callers see as warm capacity
        return sum(1 for r in self.reps if r.ready)

    def agent_pass(self, *, may_start: bool = True) -> Step:
        """What the agent does in one pass: room from the quota, then stop and start."""
        decision = step(self.current, self.want, self.reps, in_place=False,
                        room=self.quota - self.live, may_start=may_start)
        self.reps = [r for r in self.reps if r.id not in decision.stops]
        for _ in range(decision.starts):
            self.add(self.current, "starting")
        return decision

    def warm(self, advance: list[bool]) -> None:
        """Between passes, each replica still warming up may take its next step."""
        order = {"starting": "warming", "warming": "ready"}
        self.reps = [replace(r, state=order[r.state]) if r.state in order and go else r
                     for r, go in zip(self.reps, advance + [False] * len(self.reps),
                                      strict=False)]


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_a_roll_never_drops_below_want_when_the_quota_allows_a_surge(data: st.DataObject
                                                                     ) -> None:
    want = data.draw(st.integers(1, 4), label="want")
    pool = Pool(want, want + data.draw(st.integers(1, 3), label="surge room"))
    for _ in range(want):
        pool.add("h0", "ready")
    changes = iter(("h1", "h2"))
    for turn in range(30):
        if data.draw(st.integers(0, 9)) == 0:  # a reload (again, maybe mid-roll)
            pool.current = next(changes, pool.current)
        pool.agent_pass(may_start=data.draw(st.booleans()) or turn % 5 == 0)
        assert pool.ready >= want, f"ready {pool.ready} of {want}: {pool.reps}"
        assert pool.live <= pool.quota, f"over the quota: {pool.reps}"
        pool.warm(data.draw(st.lists(st.booleans(), max_size=len(pool.reps))))
    for _ in range(4 * want + 4):  # then every warm-up succeeds: the roll completes
        pool.agent_pass()
        assert pool.ready >= want and pool.live <= pool.quota
        pool.warm([True] * len(pool.reps))
    assert sorted((r.spec_hash, r.state) for r in pool.reps) == [(pool.current, "ready")] * want
