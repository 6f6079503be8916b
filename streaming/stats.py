"""Counters for one provider connection, read every 2 s by the health step.

The connection's thread writes the connection counters, the worker's loop
the frame- and event-level ones; each field has a single writer, so no lock
is needed for figures that are only reported.
"""

from __future__ import annotations

import time
from collections import deque

KINDS = ("trade", "quote", "bar", "status")


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


class ConnectionStats:
    def __init__(self, *, lag_samples: int = 4096) -> None:
        # the connection: its thread (connects) and the loop (frames)
        self.frames = 0
        self.last_frame_at: float | None = None
        self.connects = 0
        self.connect_failures = 0
        self.reconnects = 0
        self.malformed = 0
        self.errors = 0
        self.subscribes = 0
        self.unsubscribes = 0
        # worker loop
        self.by_kind = dict.fromkeys(KINDS, 0)
        self.quotes_unchanged = 0
        self.unknown_symbols = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.last_event_at: float | None = None
        self.lags: deque[float] = deque(maxlen=lag_samples)
        # rates, recomputed by `rates()`
        self._previous = (time.monotonic(), dict(self.by_kind), 0)

    def rates(self) -> dict[str, float]:
        """Messages per second by kind since the previous call."""
        now = time.monotonic()
        then, counts, frames = self._previous
        elapsed = max(now - then, 1e-6)
        rates = {
            kind: round((self.by_kind[kind] - counts[kind]) / elapsed, 2)
            for kind in KINDS
        }
        rates["frames"] = round((self.frames - frames) / elapsed, 2)
        self._previous = (now, dict(self.by_kind), self.frames)
        return rates

    def lag_ms(self) -> dict[str, float | None]:
        """p50/p99 of receive time minus event time over recent events."""
        values = sorted(self.lags)
        self.lags.clear()
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        return {
            "p50": None if p50 is None else round(p50 * 1000, 2),
            "p99": None if p99 is None else round(p99 * 1000, 2),
            "samples": len(values),
        }
