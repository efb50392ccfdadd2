"""reconciler.backoff: the one capped exponential schedule (apply retries, the agent)."""

from __future__ import annotations

import random

import pytest

from reconciler.backoff import Backoff


def test_doubles_up_to_the_cap_and_resets() -> None:
    delays = Backoff(0.25, 2.0)
    assert [delays.next() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert delays.failures == 6
    delays.reset()
    assert delays.next() == 0.25


def test_other_factors_and_a_long_failure_streak_do_not_overflow() -> None:
    assert [Backoff(1, 100, factor=3).next() for _ in range(1)] == [1]
    triple = Backoff(1, 100, factor=3)
    assert [triple.next() for _ in range(6)] == [1, 3, 9, 27, 81, 100]
    endless = Backoff(0.2, 5.0)
    endless.failures = 10_000  # a daemon failing for days
    assert endless.next() == 5.0
    assert Backoff(0, 5).next() == 0


def test_jitter_stays_within_its_fraction() -> None:
    delays = Backoff(1.0, 8.0, jitter=0.5, rng=random.Random(7))
    for expected in (1.0, 2.0, 4.0, 8.0, 8.0):
        assert expected * 0.5 <= delays.next() <= expected * 1.5


@pytest.mark.parametrize("args", [(-1, 1), (1, -1), (1, 1, 0.5), (1, 1, 2, 1.5)])
def test_nonsense_is_refused(args: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        Backoff(*args)
