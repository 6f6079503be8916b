"""Market anomalies of one instrument from its closed 1-minute bars (pure: no
Django, no I/O). The stream worker feeds closed minutes as they close; the
alert dry run and tests replay stored bars through `anomalies_scan`.

Per closed minute (`AnomalyDetector.on_minute`), three tests, each against
the instrument's own history:

* ``return_spike``: r = ln(close / previous close). The robust z-score
  (r − median) / (1.4826 · MAD) over the returns of the last `window` minutes
  (default 120; the scale floored at `return_floor` = 0.5 bp), AND, once the
  minute's time of day has `min_days` days of history (default 5 of the last
  `days` = 20), r over the typical volatility of that 5-minute slot of the
  day (exchange-local for equities, so the open and the close are judged
  against other opens and closes): z_tod = r / (1.2533 · median over days of
  the slot's mean |r|), 1.2533 turning a mean absolute deviation into a
  standard deviation. A spike needs |z| ≥ `return_z` (default 6) against
  both; its score is the smaller. Without time-of-day history the recent
  window alone decides (the explanation says so). Minutes after a gap of
  more than `max_gap` minutes (an overnight close, a halt) are not tested;
  shorter gaps scale the return by 1/sqrt(gap).
* ``volume_surge`` and ``trade_rate_surge`` (bars with a trade count): the
  minute's volume (trades) as a multiple of the median of the last `window`
  minutes, and of the slot's median over days when it has `min_days`; a
  surge is a multiple ≥ `surge` (default 5) against both AND a robust z of
  ln(value) ≥ `surge_z` (default 3) against the recent window, so an
  instrument whose volume is always bursty does not flag its ordinary bursts.
  Score: the smaller multiple.

Nothing is tested before `min_history` minutes (default 30) are known. The
recent window's median and MAD are refreshed every 10 minutes; a minute that
comes within half a threshold by them is tested with exact ones (about 20 µs
a minute instead of 110).
Memory: a few hundred floats per instrument for the recent window plus
3 × `days` floats per 5-minute slot of its trading day.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from core.minutes import MINUTE

ANOMALY_KINDS: dict[str, str] = {
    "return_spike": "Return spike: a 1-minute move far outside the usual range",
    "volume_surge": "Volume surge: a minute's volume many times the usual",
    "trade_rate_surge": "Trade-rate surge: many times the usual trades a minute",
}
MAD_TO_SIGMA = 1.4826
MEAN_ABS_TO_SIGMA = 1.2533  # sqrt(pi / 2)
SLOT_MINUTES = 5
# Recent-window statistics are refreshed every REFRESH minutes; a minute within
# PRETEST of a threshold by them is tested again with exact ones.
REFRESH = 10
PRETEST = 0.5


@dataclass(frozen=True, slots=True)
class Anomaly:
    symbol: str
    kind: str  # a key of ANOMALY_KINDS
    ts: datetime  # the minute (bar start, UTC)
    score: float  # robust z (return spikes) or multiple (surges)
    value: float  # the return, the volume or the trade count
    baseline: float  # the median it is compared with
    direction: str  # "up", "down" or ""
    explain: str

    def as_document(self) -> dict:
        return {
            "symbol": self.symbol,
            "kind": self.kind,
            "ts": self.ts.isoformat(),
            "score": round(self.score, 2),
            "value": self.value,
            "baseline": self.baseline,
            "direction": self.direction,
            "explain": self.explain,
        }


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    window: int = 120
    min_history: int = 30
    days: int = 20
    min_days: int = 5
    return_z: float = 6.0
    return_floor: float = 0.00005
    surge: float = 5.0
    surge_z: float = 3.0
    max_gap: int = 5

    def __post_init__(self) -> None:
        if not 10 <= self.min_history <= self.window:
            raise ValueError("anomalies: 10 <= min_history <= window")
        if not 1 <= self.min_days <= self.days:
            raise ValueError("anomalies: 1 <= min_days <= days")
        if self.return_z <= 0 or self.surge <= 1 or self.surge_z <= 0:
            raise ValueError("anomalies: return_z > 0, surge > 1, surge_z > 0")


def median_sorted(ordered: list[float]) -> float:
    """The median of an already sorted, non-empty list."""
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _median(values: Iterable[float]) -> float:
    return median_sorted(sorted(values))


def _robust(values: Iterable[float], floor: float) -> tuple[float, float]:
    """Median and scaled MAD (at least `floor`)."""
    values = list(values)
    median = _median(values)
    mad = _median(abs(x - median) for x in values)
    return median, max(MAD_TO_SIGMA * mad, floor)


class _Slot:
    """One 5-minute slot of the day: its per-day means, newest last."""

    __slots__ = ("abs_returns", "volumes", "trades")

    def __init__(self, days: int) -> None:
        self.abs_returns: deque[float] = deque(maxlen=days)
        self.volumes: deque[float] = deque(maxlen=days)
        self.trades: deque[float] = deque(maxlen=days)


class AnomalyDetector:
    """One instrument's anomaly tests over its closed minutes, in time order.
    Bars are anything with `ts`, `close`, `volume` and `trade_count`."""

    def __init__(
        self, symbol: str, config: AnomalyConfig | None = None, *, tz: tzinfo = UTC
    ) -> None:
        self.symbol = symbol
        self.config = c = config or AnomalyConfig()
        self.tz = tz
        self.returns: deque[float] = deque(maxlen=c.window)
        self.volumes: deque[float] = deque(maxlen=c.window)
        self.trades: deque[float] = deque(maxlen=c.window)
        self.slots: dict[int, _Slot] = {}
        self.last_ts: datetime | None = None
        self.last_close: float | None = None
        self.minutes = 0
        # the slot being filled: (date, slot), sums of |r|, volume, trades, counts
        self._open: tuple | None = None
        self._sums = [0.0, 0.0, 0.0, 0, 0, 0]
        self._cache: list = [None, None, None]

    def on_minute(self, bar) -> list[Anomaly]:
        """Test one closed minute (later than the last one; older or repeated
        minutes are ignored) and add it to the history."""
        ts = bar.ts
        if self.last_ts is not None and ts <= self.last_ts:
            return []
        close, volume = float(bar.close), float(bar.volume or 0)
        trades = bar.trade_count
        trades = float(trades) if trades else None
        r = None
        if self.last_close and close > 0 and self.last_ts is not None:
            gap = round((ts - self.last_ts) / MINUTE)
            if gap <= self.config.max_gap:
                r = math.log(close / self.last_close) / math.sqrt(max(gap, 1))
        local = ts.astimezone(self.tz)
        slot_no = (local.hour * 60 + local.minute) // SLOT_MINUTES
        slot = self.slots.get(slot_no)
        found: list[Anomaly] = []
        if self.minutes >= self.config.min_history:
            if r is not None:
                found.extend(self._return_spike(ts, r, slot))
            if volume > 0:
                found.extend(
                    self._surge(ts, "volume_surge", volume, self.volumes, slot, 1)
                )
            if trades is not None:
                found.extend(
                    self._surge(ts, "trade_rate_surge", trades, self.trades, slot, 2)
                )
        self._remember(local.date(), slot_no, r, volume, trades)
        self.last_ts, self.last_close = ts, close if close > 0 else self.last_close
        self.minutes += 1
        return found

    # --- tests ----------------------------------------------------------------------
    def _slot_ready(self, slot: _Slot | None, series: int) -> deque | None:
        if slot is None:
            return None
        values = (slot.abs_returns, slot.volumes, slot.trades)[series]
        return values if len(values) >= self.config.min_days else None

    def _cached(self, name: int, compute):
        """Recent-window statistics reused for `REFRESH` minutes (the tests
        recompute them exactly before reporting anything)."""
        cached = self._cache[name]
        if cached is None or self.minutes - cached[0] >= REFRESH:
            cached = self._cache[name] = (self.minutes, compute())
        return cached[1]

    def _return_spike(self, ts, r: float, slot) -> list[Anomaly]:
        c = self.config
        if len(self.returns) < c.min_history:
            return []
        median, scale = self._cached(0, lambda: _robust(self.returns, c.return_floor))
        if abs(r - median) < PRETEST * c.return_z * scale:
            return []
        median, scale = _robust(self.returns, c.return_floor)
        z = (r - median) / scale
        if abs(z) < c.return_z:
            return []
        explain = (
            f"{r * 100:+.2f}% in one minute is {abs(z):.1f} robust deviations from "
            f"the last {len(self.returns)} minutes' returns"
        )
        history = self._slot_ready(slot, 0)
        if history is not None:
            typical = max(MEAN_ABS_TO_SIGMA * _median(history), c.return_floor)
            z_tod = r / typical
            if abs(z_tod) < c.return_z:
                return []
            z = math.copysign(min(abs(z), abs(z_tod)), r)
            explain += (
                f" and {abs(z_tod):.1f} typical moves for this time of day "
                f"({len(history)} days)"
            )
        else:
            explain += " (no time-of-day history yet)"
        return [
            Anomaly(
                symbol=self.symbol,
                kind="return_spike",
                ts=ts,
                score=abs(z),
                value=r,
                baseline=median,
                direction="up" if r > 0 else "down",
                explain=explain + ".",
            )
        ]

    def _surge(self, ts, kind: str, value: float, recent: deque, slot, series: int):
        c = self.config
        if len(recent) < c.min_history:
            return []
        if value < PRETEST * c.surge * self._cached(series, lambda: _median(recent)):
            return []
        median = _median(recent)
        if median <= 0 or value / median < c.surge:
            return []
        logs = [math.log(x) for x in recent if x > 0]
        if len(logs) < c.min_history:
            return []
        log_median, log_scale = _robust(logs, 0.05)
        if (math.log(value) - log_median) / log_scale < c.surge_z:
            return []
        multiple = value / median
        what = "volume" if kind == "volume_surge" else "trades"
        explain = (
            f"{value:g} {what} in one minute is {multiple:.1f}× the median of the "
            f"last {len(recent)} minutes"
        )
        history = self._slot_ready(slot, series)
        if history is not None:
            usual = _median(history)
            if usual > 0:
                if value / usual < c.surge:
                    return []
                multiple = min(multiple, value / usual)
                explain += f" and {value / usual:.1f}× usual for this time of day"
        else:
            explain += " (no time-of-day history yet)"
        return [
            Anomaly(
                symbol=self.symbol,
                kind=kind,
                ts=ts,
                score=multiple,
                value=value,
                baseline=median,
                direction="",
                explain=explain + ".",
            )
        ]

    # --- history --------------------------------------------------------------------
    def _remember(self, day, slot_no: int, r, volume: float, trades) -> None:
        if r is not None:
            self.returns.append(r)
        if volume > 0:
            self.volumes.append(volume)
        if trades is not None:
            self.trades.append(trades)
        key = (day, slot_no)
        if self._open != key:
            self._close_slot()
            self._open = key
        sums = self._sums
        if r is not None:
            sums[0] += abs(r)
            sums[3] += 1
        if volume > 0:
            sums[1] += volume
            sums[4] += 1
        if trades is not None:
            sums[2] += trades
            sums[5] += 1

    def _close_slot(self) -> None:
        if self._open is None:
            return
        sums = self._sums
        slot = self.slots.get(self._open[1])
        if slot is None:
            slot = self.slots[self._open[1]] = _Slot(self.config.days)
        if sums[3]:
            slot.abs_returns.append(sums[0] / sums[3])
        if sums[4]:
            slot.volumes.append(sums[1] / sums[4])
        if sums[5]:
            slot.trades.append(sums[2] / sums[5])
        self._sums = [0.0, 0.0, 0.0, 0, 0, 0]


def anomalies_scan(
    bars: Iterable,
    *,
    symbol: str,
    config: AnomalyConfig | None = None,
    tz: tzinfo = UTC,
) -> list[Anomaly]:
    """Every anomaly in a sequence of closed 1-minute bars (oldest first), as
    the stream worker would have found them minute by minute."""
    detector = AnomalyDetector(symbol, config, tz=tz)
    found: list[Anomaly] = []
    for bar in bars:
        found.extend(detector.on_minute(bar))
    return found
