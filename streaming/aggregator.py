"""Minute bars from the stream: trades aggregated here, provider bars applied.

Per instrument the aggregator keeps the last few minutes in memory. A trade
updates the bar of its minute; a provider bar (Alpaca `b`/`u`, a closed
Binance kline) replaces it and from then on that instrument's stored bars come
from the provider only. A minute is handed out for storage `grace` seconds
after it ends (late trades still count), and again whenever a correction or a
late trade changes it afterwards, so the idempotent upsert always ends with
the latest values.

Minutes the worker did not see completely (a connection drop, a subscription
that started mid-minute, a malformed frame) are *tainted*: their trade-built
bars are never stored, the gap backfill fetches them from the provider instead.

Memory: a minute is forgotten `LATE_MINUTES` after it closed once it is stored
(or tainted, or known to come from the provider). A minute whose storing
failed stays until it is stored, up to `unstored_limit` minutes per
instrument; past that the oldest are dropped and listed in `overflow`, which
the worker writes to the gap ledger, so nothing is lost silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from core.minutes import MINUTE, floor_minute

LATE_MINUTES = 5  # trades this late still count in their minute
ZERO = Decimal(0)


@dataclass(slots=True)
class MinuteBar:
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    notional: Decimal = ZERO
    trade_count: int = 0
    vwap: Decimal | None = None
    from_provider: bool = False
    dirty: bool = True
    stored: bool = False

    def add(self, price: Decimal, size: Decimal) -> None:
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        self.notional += price * size
        self.trade_count += 1
        self.dirty = True

    def computed_vwap(self) -> Decimal | None:
        if self.from_provider:
            return self.vwap
        if self.volume:
            return (self.notional / self.volume).quantize(Decimal("0.00000001"))
        return None

    def as_document(self) -> dict:
        return {
            "ts": self.ts.isoformat(),
            "open": str(self.open),
            "high": str(self.high),
            "low": str(self.low),
            "close": str(self.close),
            "volume": str(self.volume),
        }


@dataclass(slots=True)
class _Series:
    bars: dict[datetime, MinuteBar] = field(default_factory=dict)
    current: MinuteBar | None = None
    provider_bars: bool = False
    taints: list[tuple[datetime, datetime | None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ClosedBar:
    symbol: str
    bar: MinuteBar


class MinuteAggregator:
    def __init__(self, *, grace: float = 2.0, unstored_limit: int = 240) -> None:
        self.grace = timedelta(seconds=grace)
        self.unstored_limit = max(1, unstored_limit)
        self.series: dict[str, _Series] = {}
        self.late_trades = 0
        #: (symbol, minute) dropped unstored past `unstored_limit`
        self.overflow: list[tuple[str, datetime]] = []

    def _series(self, symbol: str) -> _Series:
        series = self.series.get(symbol)
        if series is None:
            series = self.series[symbol] = _Series()
        return series

    def forget(self, symbol: str) -> None:
        self.series.pop(symbol, None)

    # --- input -----------------------------------------------------------------------
    def add_trade(
        self, symbol: str, ts: datetime, price: Decimal, size: Decimal
    ) -> MinuteBar | None:
        """Count a trade in its minute; returns the bar, or None when the
        minute is too old to keep (counted in `late_trades`)."""
        series = self._series(symbol)
        current = series.current
        if (
            current is not None
            and current.ts <= ts < current.ts + MINUTE
            and not current.from_provider
        ):
            current.add(price, size)
            return current
        minute = floor_minute(ts)
        bar = series.bars.get(minute)
        if bar is None:
            newest = max(series.bars) if series.bars else None
            if newest is not None and minute < newest - MINUTE * LATE_MINUTES:
                self.late_trades += 1
                return None
            bar = MinuteBar(minute, price, price, price, price, size, price * size, 1)
            series.bars[minute] = bar
        elif bar.from_provider:
            return bar  # the provider's bar already has this trade
        else:
            bar.add(price, size)
        if current is None or minute >= current.ts:
            series.current = bar
        return bar

    def apply_bar(
        self,
        symbol: str,
        *,
        ts: datetime,
        open: Decimal,
        high: Decimal,
        low: Decimal,
        close: Decimal,
        volume: Decimal,
        vwap: Decimal | None,
        trade_count: int | None,
        closed: bool = True,
    ) -> MinuteBar:
        """A provider bar (or a correction of one) replaces this minute."""
        series = self._series(symbol)
        minute = floor_minute(ts)
        bar = MinuteBar(
            minute,
            open,
            high,
            low,
            close,
            volume,
            trade_count=trade_count or 0,
            vwap=vwap,
            from_provider=closed,
            dirty=closed,
        )
        if closed:
            series.provider_bars = True
        previous = series.bars.get(minute)
        if previous is not None and previous.stored:
            bar.stored = True
        series.bars[minute] = bar
        if series.current is None or minute >= series.current.ts:
            series.current = bar
        return bar

    def taint(
        self, symbols: Iterable[str], *, start: datetime, end: datetime | None
    ) -> None:
        """Never store trade-built bars for minutes in [start, end) (end None:
        open until `close_open_taints`)."""
        for symbol in symbols:
            self._series(symbol).taints.append((floor_minute(start), end))

    def close_open_taints(self, symbols: Iterable[str], *, end: datetime) -> None:
        for symbol in symbols:
            series = self.series.get(symbol)
            if series is not None:
                series.taints = [
                    (s, e if e is not None else end) for s, e in series.taints
                ]

    def forming(self, symbol: str) -> MinuteBar | None:
        series = self.series.get(symbol)
        return series.current if series is not None else None

    def accounted(self, symbol: str, minute: datetime) -> bool:
        """True when `minute` is stored or will be, or is tainted (so the gap
        ledger repairs it): what the reconciliation needs to know."""
        series = self.series.get(symbol)
        if series is None:
            return False
        if self._tainted(series, minute):
            return True
        bar = series.bars.get(minute)
        # stored, or `due` will store it: the provider's bar, or a trade-built
        # one where the provider sends none
        return bar is not None and (
            bar.stored or bar.from_provider or not series.provider_bars
        )

    def unstored(self) -> int:
        """Closed minutes waiting for storage (a failed write keeps them)."""
        return sum(
            1
            for series in self.series.values()
            for bar in series.bars.values()
            if bar.dirty and bar.stored
        )

    # --- output ----------------------------------------------------------------------
    def due(self, *, now: datetime, final: bool = False) -> list[ClosedBar]:
        """Bars to store now: closed for `grace` (or everything when `final`)
        and changed since last stored. Marks them clean; forgets old minutes."""
        out: list[ClosedBar] = []
        horizon = now - self.grace
        forget_before = floor_minute(now) - MINUTE * LATE_MINUTES
        for symbol, series in self.series.items():
            self._forget(symbol, series, forget_before)
            for minute, bar in series.bars.items():
                if bar.dirty and (final or minute + MINUTE <= horizon):
                    bar.dirty = False
                    # At shutdown the forming minute is stored even where the
                    # provider sends bars: the worker marks it partial and the
                    # next start replaces it through the backfill.
                    provider_will_send = series.provider_bars and not (
                        final and bar is series.current
                    )
                    if bar.from_provider or not (
                        provider_will_send or self._tainted(series, minute)
                    ):
                        bar.stored = True
                        out.append(ClosedBar(symbol, bar))
        return out

    def _forget(self, symbol: str, series: _Series, before: datetime) -> None:
        """Drop old minutes that are settled; keep unstored ones up to the
        limit, the oldest beyond it go to `overflow`."""
        old = [
            m
            for m in series.bars
            if m < before and series.bars[m] is not series.current
        ]
        waiting = []
        for minute in old:
            if series.bars[minute].dirty:
                waiting.append(minute)
            else:
                del series.bars[minute]
        excess = len(waiting) - self.unstored_limit
        if excess > 0:
            for minute in sorted(waiting)[:excess]:
                del series.bars[minute]
                self.overflow.append((symbol, minute))
        if series.taints:
            # A taint outlives the late window while a minute it covers waits.
            if series.bars:
                before = min(before, min(series.bars))
            series.taints = [
                (s, e) for s, e in series.taints if e is None or e > before
            ]

    def take_overflow(self) -> list[tuple[str, datetime]]:
        out, self.overflow = self.overflow, []
        return out

    @staticmethod
    def _tainted(series: _Series, minute: datetime) -> bool:
        for start, end in series.taints:
            if start <= minute and (end is None or minute < end):
                return True
        return False
