"""Suspect ticks: a trade far outside the recent range is held until the next
trades or quotes confirm it (pure logic, no I/O; one `SuspectFilter` per
instrument, owned by the stream worker's `InstrumentState`).

The test (robust, adapted to the instrument's volatility):

* the reference is the median of the last `window` accepted trade prices
  (default 50), the spread their MAD scaled to a standard deviation
  (1.4826 · MAD), floored at `floor_rel` of the median (default 5 bp) and at
  `floor_ticks` price increments (default 2; the increment is the smallest
  one seen in the prices), so a market that printed the same price 50 times
  does not flag the next tick;
* a trade is *suspect* when |price − median| > `threshold` · spread (default
  8). The test itself is two Decimal comparisons with the band's edges;
  the window's statistics are recomputed every `refresh` accepted trades
  (default 128) and again before a trade is held, so a trade is only ever
  held on the exact statistics of the last `window` trades. The test starts
  once `min_trades` prices are known (default 20): earlier trades pass.

A suspect trade is held: it is not applied to the instrument, the minute bar
or the alerts. Then, with the same band (`threshold` · spread):

* a trade within the band of the latest held price joins the held ones; when
  `confirm_trades` are held (default 3: the suspect and two that agree), the
  move is *confirmed*: every held trade is released, in order, and the window
  moves by the jump (its volatility kept), so the new level is the reference;
* a quote whose midpoint is within the band of the latest held price confirms
  at once (a real jump moves the book too);
* a trade back within the band of the median *rejects* the held trades (it
  passes itself); a trade far from both starts a new hold and rejects the old;
* held trades older than `max_hold` seconds (event time, default 2 s, the
  worker's bar grace) are rejected by `expire`, and `drop_held` rejects them
  at shutdown, so a held trade always ends released or counted as rejected.

A real jump is therefore delayed by at most `confirm_trades − 1` trades, or
one quote, and lost only when nothing at all confirms it within `max_hold`.
Counters: `suspect` (trades held), `confirmed` (released), `rejected`;
suspect = confirmed + rejected + len(held) at any time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from marketdata.anomalies import MAD_TO_SIGMA, median_sorted

NO_LOW, NO_HIGH = Decimal("-Infinity"), Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class SuspectConfig:
    window: int = 50
    min_trades: int = 20
    threshold: float = 8.0
    floor_rel: float = 0.0005
    floor_ticks: float = 2.0
    confirm_trades: int = 3
    max_hold: float = 2.0
    refresh: int = 128

    def __post_init__(self) -> None:
        if self.window < 5 or not 3 <= self.min_trades <= self.window:
            raise ValueError("suspect ticks: window >= 5, 3 <= min_trades <= window")
        if self.threshold <= 0 or self.floor_rel < 0 or self.floor_ticks < 0:
            raise ValueError("suspect ticks: threshold > 0, floors >= 0")
        if self.confirm_trades < 2 or self.max_hold <= 0 or self.refresh < 1:
            raise ValueError(
                "suspect ticks: confirm_trades >= 2, max_hold > 0, refresh >= 1"
            )


class SuspectFilter:
    """One instrument's suspect-tick test. `trade` and `quote` return None
    when the caller should go on as usual, else the list of held items to
    apply now, in their order (possibly empty: the trade is held)."""

    __slots__ = (
        "config", "prices", "since_refresh", "refresh_every", "ready", "median",
        "band", "low", "high", "tick",
        "held", "held_since", "suspect", "confirmed", "rejected",
    )  # fmt: skip

    def __init__(self, config: SuspectConfig) -> None:
        self.config = config
        self.prices: deque[Decimal] = deque(maxlen=config.window)
        self.since_refresh = 0
        self.refresh_every = 1
        self.ready = False
        self.median = 0.0
        self.band = 0.0
        self.low, self.high = NO_LOW, NO_HIGH  # Decimal bounds once ready
        self.tick: float | None = None
        self.held: list[tuple[object, float]] = []
        self.held_since: datetime | None = None
        self.suspect = self.confirmed = self.rejected = 0

    # --- events ---------------------------------------------------------------------
    def trade(self, item, price: Decimal, ts: datetime) -> list | None:
        # The per-trade path: two Decimal comparisons and one append; prices
        # become floats only when the window is refreshed.
        if self.held:
            return self._while_held(item, price, float(price), ts)
        if not self.low <= price <= self.high:
            if self.since_refresh:  # decide on exact statistics
                self._refresh()
            if not self.low <= price <= self.high:
                self._hold(item, float(price), ts)
                return []
        self.prices.append(price)
        self.since_refresh += 1
        if self.since_refresh >= self.refresh_every:
            self._refresh()
        return None

    def quote(self, bid: Decimal | None, ask: Decimal | None) -> list | None:
        """A quote confirms held trades when its midpoint agrees with them."""
        if not self.held or not bid or not ask or ask < bid:
            return None
        mid = (float(bid) + float(ask)) / 2
        if abs(mid - self.held[-1][1]) <= self.band:
            return self._confirm()
        return None

    def expire(self, now: datetime) -> int:
        """Reject held trades older than `max_hold`; returns how many."""
        if not self.held or self.held_since is None:
            return 0
        if (now - self.held_since).total_seconds() <= self.config.max_hold:
            return 0
        return self._reject()

    def drop_held(self) -> int:
        """Reject whatever is held (shutdown: nothing can confirm it now)."""
        return self._reject() if self.held else 0

    def counts(self) -> dict[str, int]:
        return {
            "suspect": self.suspect,
            "confirmed": self.confirmed,
            "rejected": self.rejected,
            "held": len(self.held),
        }

    # --- internals ------------------------------------------------------------------
    def _while_held(self, item, price: Decimal, p: float, ts: datetime) -> list | None:
        if abs(p - self.held[-1][1]) <= self.band:
            self.held.append((item, p))
            self.suspect += 1
            if len(self.held) >= self.config.confirm_trades:
                return self._confirm()
            return []
        self._reject()
        if abs(p - self.median) <= self.band:
            self.prices.append(price)
            self.since_refresh += 1
            return None
        self._hold(item, p, ts)
        return []

    def _hold(self, item, p: float, ts: datetime) -> None:
        self.held.append((item, p))
        self.held_since = ts
        self.suspect += 1

    def _confirm(self) -> list:
        held, self.held, self.held_since = self.held, [], None
        self.confirmed += len(held)
        # The new level becomes the reference; the window keeps its spread.
        shift = Decimal(repr(held[-1][1] - self.median))
        self.prices = deque((x + shift for x in self.prices), maxlen=self.config.window)
        self.prices.extend(Decimal(repr(p)) for _, p in held)
        self._refresh()
        return [item for item, _ in held]

    def _reject(self) -> int:
        count = len(self.held)
        self.rejected += count
        self.held, self.held_since = [], None
        return count

    def _refresh(self) -> None:
        c = self.config
        self.since_refresh = 0
        if self.prices:
            exponent = self.prices[-1].as_tuple().exponent
            if isinstance(exponent, int):
                tick = 10.0**exponent
                if self.tick is None or tick < self.tick:
                    self.tick = tick
        ordered = sorted(map(float, self.prices))
        n = len(ordered)
        self.ready = n >= c.min_trades
        if not n:
            return
        median = median_sorted(ordered)
        # The deviations are two ascending runs (below and above the median):
        # sorting them is one merge.
        half = n // 2
        deviations = [median - x for x in ordered[half - 1 :: -1]] if half else []
        deviations += [x - median for x in ordered[half:]]
        deviations.sort()
        mad = median_sorted(deviations)
        floor = max(c.floor_rel * abs(median), c.floor_ticks * (self.tick or 0.0))
        self.median = median
        self.band = c.threshold * max(MAD_TO_SIGMA * mad, floor)
        if self.ready:
            self.low = Decimal(median - self.band)
            self.high = Decimal(median + self.band)
        else:
            self.low, self.high = NO_LOW, NO_HIGH
        # Until the window is ready every accepted trade refreshes it.
        self.refresh_every = c.refresh if self.ready else 1
