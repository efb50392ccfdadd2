"""Capped exponential backoff: the one delay schedule every retry loop uses.

    delays = Backoff(0.2, 5.0)
    time.sleep(delays.next())   # 0.2, 0.4, 0.8, ... up to 5.0
    delays.reset()              # after a success

`jitter` (a fraction, 0 by default) spreads each delay uniformly over
±jitter of its value, so many clients failing together do not retry together.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float, cap: float, factor: float = 2.0,
                 jitter: float = 0.0, *, rng: random.Random | None = None) -> None:
        if initial < 0 or cap < 0 or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("Backoff needs initial >= 0, cap >= 0, factor >= 1, "
                             "0 <= jitter <= 1")
        self.initial, self.cap, self.factor, self.jitter = initial, cap, factor, jitter
        self.failures = 0  # delays handed out since the last reset
        self._rng = rng  # made on first use: seeding one costs more than a whole retry loop

    def peek(self) -> float:
        """The next delay before jitter, without counting it."""
        # min() before the power would overflow: factor ** failures grows without bound.
        delay = self.initial
        if delay == 0 or self.factor == 1:
            return min(delay, self.cap)
        for _ in range(self.failures):
            delay *= self.factor
            if delay >= self.cap:
                return self.cap
        return min(delay, self.cap)

    def next(self) -> float:
        """The delay before the next attempt; each call doubles it (by `factor`) up to `cap`."""
        delay = self.peek()
        self.failures += 1
        if self.jitter:
            if self._rng is None:
                self._rng = random.Random()
            delay *= 1 + self._rng.uniform(-self.jitter, self.jitter)
        return delay

    def reset(self) -> None:
        self.failures = 0
