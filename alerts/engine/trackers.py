"""Values the engine computes from the feed: minute bars rolled up into
clock-aligned timeframe buckets (`Frame`), the indicators fed from their
closes (`RSITracker`, `MATracker`), minute-volume averages
(`VolumeTracker`), and the per-instrument state (`InstrumentState`)."""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal

from alerts.kinds import TIMEFRAME_NAMES
from core.minutes import MINUTE
from marketdata.indicators import EMA, RSI, SMA
from marketdata.rollups import bucket_floor

# Closed minute bars kept in memory per instrument (for warming new trackers).
RECENT_MINUTES = 180
MAX_FRAME_HISTORY = 2_000

#: A closed bar as the engine keeps it: (ts, close, volume, open, high, low).
MinuteBar = tuple[datetime, float, float, float, float, float]


def bucket_start(ts: datetime, minutes: int) -> datetime:
    """Start of the clock-aligned bucket of `minutes` holding `ts` (the
    database's date_bin buckets share this alignment)."""
    return bucket_floor(timeframe=TIMEFRAME_NAMES[minutes], asset_class="", at=ts)


class RSITracker:
    __slots__ = ("state", "history")

    def __init__(self, period: int) -> None:
        self.state = RSI(period)
        self.history = 10 * period + 1

    def on_bar(self, close: float) -> float | None:
        value = self.state.update(close)
        return None if value != value else value


class MATracker:
    __slots__ = ("fast", "slow", "history")

    def __init__(self, ma_type: str, fast: int, slow: int) -> None:
        kind = EMA if ma_type == "ema" else SMA
        self.fast = kind(fast)
        self.slow = kind(slow)
        self.history = slow * (5 if ma_type == "ema" else 1) + 1

    def on_bar(self, close: float) -> float | None:
        fast = self.fast.update(close)
        slow = self.slow.update(close)
        if fast != fast or slow != slow:
            return None
        return fast - slow


class Frame:
    """Rolls closed minute bars up into one timeframe and feeds its trackers.
    With pattern rules watching (`patterns`), it keeps the last bars as OHLCV
    dicts for the detector."""

    __slots__ = (
        "minutes",
        "bucket",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "last_minute",
        "closes",
        "trackers",
        "bars",
        "patterns",
    )

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self.bucket: datetime | None = None
        self.open = self.high = self.low = self.close = self.volume = 0.0
        self.last_minute: datetime | None = None
        self.closes: deque[float] = deque(maxlen=MAX_FRAME_HISTORY)
        self.trackers: list[tuple[object, object]] = []
        self.bars: deque[dict] | None = None
        #: pattern kind -> rules/conditions watching it (set by the engine)
        self.patterns: dict[str, list] = {}

    def keep_bars(self, count: int) -> None:
        if self.bars is None or (self.bars.maxlen or 0) < count:
            self.bars = deque(self.bars or (), maxlen=count)

    def bucket_of(self, ts: datetime) -> datetime:
        if self.minutes == 1:
            return ts
        return bucket_start(ts, self.minutes)

    def on_minute(self, bar: MinuteBar) -> tuple[list, dict | None]:
        """Feed one closed minute; return ((series, value) of each tracker
        that produced a value on a bucket closing, the closed bucket as an
        OHLCV dict or None)."""
        ts, close, volume, open_, high, low = bar
        if self.last_minute is not None and ts <= self.last_minute:
            return [], None
        self.last_minute = ts
        bucket = self.bucket_of(ts)
        updates: list = []
        closed = None
        if self.bucket is not None and bucket != self.bucket:
            closed = self._close_bucket(updates)
        if self.bucket is None:
            self.bucket = bucket
            self.open, self.high, self.low, self.volume = open_, high, low, 0.0
        else:
            self.high = max(self.high, high)
            self.low = min(self.low, low)
        self.close = close
        self.volume += volume
        if ts + MINUTE >= bucket + timedelta(minutes=self.minutes):
            closed = self._close_bucket(updates)
        return updates, closed

    def _close_bucket(self, updates: list) -> dict | None:
        if self.bucket is None:
            return None
        close = self.close
        closed = None
        if self.bars is not None:
            closed = {
                "ts": self.bucket,
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": close,
                "volume": self.volume,
            }
            self.bars.append(closed)
        self.bucket = None
        self.closes.append(close)
        for tracker, series in self.trackers:
            value = tracker.on_bar(close)
            if value is not None:
                updates.append((series, value))
        return closed


class VolumeTracker:
    """Current minute volume over the average of the last `period` minutes."""

    __slots__ = ("period", "volumes", "average")

    def __init__(self, period: int) -> None:
        self.period = period
        self.volumes: deque[float] = deque(maxlen=period)
        self.average = 0.0

    def on_minute_closed(self, volume: float) -> None:
        self.volumes.append(volume)
        self.average = math.fsum(self.volumes) / len(self.volumes)

    def ratio(self, volume: float) -> float | None:
        if len(self.volumes) < self.period or self.average <= 0:
            return None
        return volume / self.average


class InstrumentState:
    __slots__ = (
        "symbol",
        "instrument_id",
        "price",
        "price_decimal",
        "prev_close",
        "prev_close_decimal",
        "live",
        "epoch",
        "saw_trade",
        "bars_feed",
        "minute",
        "minute_open",
        "minute_high",
        "minute_low",
        "minute_close",
        "minute_volume",
        "last_closed",
        "recent",
        "series",
        "frames",
        "volumes",
        "seeded",
        "portfolios",
        "anomalies",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.instrument_id = 0
        self.price: float | None = None
        self.price_decimal: Decimal | None = None
        self.prev_close: float | None = None
        self.prev_close_decimal: Decimal | None = None
        self.live = True
        self.epoch = 0
        self.saw_trade = False
        self.bars_feed = False
        self.minute: datetime | None = None
        self.minute_open = self.minute_high = self.minute_low = 0.0
        self.minute_close = 0.0
        self.minute_volume = 0.0
        self.last_closed: datetime | None = None
        # Recently closed minutes, oldest first.
        self.recent: deque[MinuteBar] = deque(maxlen=RECENT_MINUTES)
        self.series: dict[tuple, object] = {}
        self.frames: dict[int, Frame] = {}
        self.volumes: dict[int, tuple[VolumeTracker, object]] = {}
        # History already asked from the DB: timeframe minutes -> bars.
        self.seeded: dict[int, int] = {}
        #: portfolios holding the instrument (alerts.engine.portfolio)
        self.portfolios: list = []
        #: anomaly kind -> rules/conditions watching it
        self.anomalies: dict[str, list] = {}

    def minute_bar(self) -> MinuteBar:
        return (
            self.minute,
            self.minute_close,
            self.minute_volume,
            self.minute_open,
            self.minute_high,
            self.minute_low,
        )
