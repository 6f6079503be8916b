"""Reconnect delays: exponential backoff with full jitter.

The ceiling doubles from `base` to `cap` with every failed attempt and the
actual delay is uniform in [0, ceiling] ("full jitter"), so many workers that
lost the same provider do not come back in lock-step. A connection that stayed
healthy for `reset_after` seconds starts again from `base`.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        *,
        base: float = 1.0,
        cap: float = 60.0,
        reset_after: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.reset_after = reset_after
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        return min(self.cap, self.base * (2 ** min(self.attempts, 30)))

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        delay = self._rng.uniform(0, self.ceiling())
        self.attempts += 1
        return delay

    def healthy_for(self, seconds: float) -> None:
        """Report how long the last connection stayed up and healthy."""
        if seconds >= self.reset_after:
            self.attempts = 0
