"""Dry run: when would a rule have fired over the last N days of stored bars?

The stored 1-minute bars are replayed, oldest first, as closed `BarEvent`s
through the same `AlertEngine` the stream worker runs, holding only this rule
(saved or not: the edit form can test unsaved values). Before the window the
engine is fed the warm-up bars the rule needs (RSI, moving averages, volume
average) while marked stale, so indicators are warm but nothing fires; the
first bar of the window is a baseline, like the first tick after start-up.

Each stored minute is replayed as four trades along its open/low/high/close
path plus the closed bar (`bar_events`), so price, change % and volume rules
see moves inside the minute; a live engine sees every trade, so the times are
approximate to the quarter minute and a path between two extremes is assumed. The previous close for change % is the last stored bar of
the previous local day (New York for equities, UTC for crypto), so after-hours
bars count when they are stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from alerts.engine import AlertEngine, EngineRule, FiredAlert, _history_minutes
from alerts.models import AlertRule
from alerts.selectors import ENGINE_FIELDS, minute_bars_before, minute_bars_between
from marketdata.calendar import ALWAYS_OPEN_CLASSES, NEW_YORK
from marketdata.events import BarEvent, Trade

MAX_DAYS = 30
# Every rule gets at least this much warm-up, so its armed/waiting state at the
# start of the window reflects the recent path, as in a running engine.
MIN_WARMUP_MINUTES = 120


@dataclass
class DryRun:
    rule: AlertRule
    days: int
    start: datetime
    end: datetime
    bars: int = 0
    warmup_bars: int = 0
    first_bar: datetime | None = None
    last_bar: datetime | None = None
    fired: list[FiredAlert] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.bars == 0


def rule_engine_row(rule: AlertRule) -> dict:
    """The engine's view of a (possibly unsaved) rule; history is ignored."""
    row = {name: getattr(rule, name, None) for name in ENGINE_FIELDS}
    row["id"] = rule.pk or 0
    row["owner_id"] = rule.owner_id or 0
    row["symbol"] = rule.instrument.symbol
    row["last_fired_at"] = None
    return row


def local_day(asset_class: str, at: datetime):
    zone = UTC if asset_class in ALWAYS_OPEN_CLASSES else NEW_YORK
    return at.astimezone(zone).date()


def bar_event(symbol: str, bar) -> BarEvent:
    return BarEvent(
        symbol=symbol,
        ts=bar.ts,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        provider=bar.provider or "history",
        vwap=bar.vwap,
        trade_count=bar.trade_count,
    )


def bar_events(symbol: str, bar) -> list:
    """What a live feed would have sent for one stored minute, approximately:
    four trades tracing open -> low -> high -> close on an up bar (open ->
    high -> low -> close on a down bar) at :00/:15/:30/:45 with a quarter of
    the volume each, then the closed bar. So a level touched inside the
    minute counts, and volume builds up through the minute."""
    up = bar.close >= bar.open
    path = (
        (bar.open, bar.low, bar.high, bar.close)
        if up
        else (bar.open, bar.high, bar.low, bar.close)
    )
    size = bar.volume / 4
    provider = bar.provider or "history"
    events: list = [
        Trade(
            symbol=symbol,
            ts=bar.ts + timedelta(seconds=15 * index),
            price=price,
            size=size,
            provider=provider,
        )
        for index, price in enumerate(path)
    ]
    events.append(bar_event(symbol, bar))
    return events


def replay(
    *,
    engine: AlertEngine,
    symbol: str,
    asset_class: str,
    warmup: Iterable,
    window: Iterable,
    prev_close=None,
) -> list[FiredAlert]:
    """Feed stored bars through `engine`: warm-up bars while stale, then the
    window live. Tracks the previous local day's close for change %."""
    fired: list[FiredAlert] = []
    day = None
    last_close = prev_close
    day_close = None

    def advance(bar) -> None:
        nonlocal day, day_close, last_close
        bar_day = local_day(asset_class, bar.ts)
        if day is not None and bar_day != day:
            day_close = last_close
        day = bar_day
        if day_close is not None:
            engine.set_prev_close(symbol, day_close)
        last_close = bar.close

    if prev_close is not None:
        day_close = prev_close
    engine.set_freshness(symbol, "stale")
    for bar in warmup:
        advance(bar)
        for event in bar_events(symbol, bar):
            engine.on_event(event)
    engine.set_freshness(symbol, "live")
    for bar in window:
        advance(bar)
        for event in bar_events(symbol, bar):
            fired.extend(engine.on_event(event))
    return fired


def rule_dry_run(*, rule: AlertRule, days: int, now: datetime | None = None) -> DryRun:
    """Replay the last `days` days of stored minute bars through the rule."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"Test against 1 to {MAX_DAYS} days of history.")
    end = now or timezone.now()
    start = end - timedelta(days=days)
    result = DryRun(rule=rule, days=days, start=start, end=end)
    instrument = rule.instrument
    row = rule_engine_row(rule)
    warmup_minutes = max(_history_minutes(row), MIN_WARMUP_MINUTES)
    warmup_bars = minute_bars_before(
        instrument_id=instrument.pk, limit=warmup_minutes, before=start
    )
    window = minute_bars_between(instrument=instrument, start=start, end=end)
    first = warmup_bars[0].ts if warmup_bars else (window[0].ts if window else start)
    previous_day = minute_bars_before(
        instrument_id=instrument.pk,
        limit=1,
        before=_day_start(instrument.asset_class, first),
    )
    prev_close = previous_day[-1].close if previous_day else None
    engine = AlertEngine(symbols={instrument.symbol}, seed_from_db=False)
    engine.add_rule(EngineRule.from_row(row))
    result.fired = replay(
        engine=engine,
        symbol=instrument.symbol,
        asset_class=instrument.asset_class,
        warmup=warmup_bars,
        window=window,
        prev_close=prev_close,
    )
    result.bars = len(window)
    result.warmup_bars = len(warmup_bars)
    if window:
        result.first_bar, result.last_bar = window[0].ts, window[-1].ts
    return result


def _day_start(asset_class: str, at: datetime) -> datetime:
    zone = UTC if asset_class in ALWAYS_OPEN_CLASSES else NEW_YORK
    local = at.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
