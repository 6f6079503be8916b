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

Every kind replays: a rule over several instruments (multi-condition, or a
portfolio: the owner's positions as held today) replays the minutes of all of
them merged in time order; pattern rules run the detector on each closed bar
as the live engine does; anomaly rules replay the minutes through the
`marketdata.anomalies` detector and hand its anomalies to the engine after
the minute they belong to. Without a detector on the server the dry run says
so in `notes` (and that kind cannot fire).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from alerts.engine import AlertEngine, EngineRule, FiredAlert, history_minutes
from alerts.kinds.events import patterns_module
from alerts.models import AlertRule
from alerts.selectors import (
    ENGINE_FIELDS,
    instruments_by_symbol,
    minute_bars_before,
    minute_bars_between,
)
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
    notes: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.bars == 0


def rule_engine_row(rule: AlertRule) -> dict:
    """The engine's view of a (possibly unsaved) rule; history is ignored."""
    row = {name: getattr(rule, name, None) for name in ENGINE_FIELDS}
    row["id"] = rule.pk or 0
    row["owner_id"] = rule.owner_id or 0
    row["symbol"] = rule.instrument.symbol if rule.instrument_id else ""
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
    engine_rule = EngineRule.from_row(rule_engine_row(rule))
    engine = AlertEngine(symbols=None, seed_from_db=False)
    subs = engine_rule.conditions_engine or [engine_rule]
    symbols = list(dict.fromkeys(sub.symbol for sub in subs if sub.symbol))
    if any(sub.kind == "portfolio_value" for sub in subs):
        from portfolio.selectors import portfolio_terms

        terms = portfolio_terms(owner_ids=[rule.owner_id], at=end).get(
            rule.owner_id, []
        )
        engine.portfolio_set(rule.owner_id, terms)
        symbols += [t.symbol for t in terms if t.symbol not in symbols]
        result.notes.append("Portfolio values use the positions as held today.")
    if any(sub.kind == "pattern" for sub in subs) and patterns_module() is None:
        result.notes.append("Pattern detection is not available on this server.")
    anomaly_kinds = {sub.anomaly for sub in subs if sub.kind == "anomaly"}
    detector_factory = _anomaly_detector_factory() if anomaly_kinds else None
    if anomaly_kinds and detector_factory is None:
        result.notes.append("Anomaly detection is not available on this server.")
    warmup_minutes = max([history_minutes(sub) for sub in subs] + [MIN_WARMUP_MINUTES])
    instruments = instruments_by_symbol(symbols=symbols)
    streams = []
    for symbol in symbols:
        instrument = instruments.get(symbol)
        if instrument is None:
            result.notes.append(f"{symbol} no longer exists.")
            continue
        warmup = minute_bars_before(
            instrument_id=instrument.pk, limit=warmup_minutes, before=start
        )
        window = minute_bars_between(instrument=instrument, start=start, end=end)
        first = warmup[0].ts if warmup else (window[0].ts if window else start)
        previous_day = minute_bars_before(
            instrument_id=instrument.pk,
            limit=1,
            before=_day_start(instrument.asset_class, first),
        )
        detector = (
            detector_factory(symbol)
            if detector_factory is not None and symbol in _anomaly_symbols(subs)
            else None
        )
        streams.append(
            _Stream(
                symbol=symbol,
                asset_class=instrument.asset_class,
                warmup=warmup,
                window=window,
                prev_close=previous_day[-1].close if previous_day else None,
                detector=detector,
            )
        )
        result.bars = max(result.bars, len(window))
        result.warmup_bars = max(result.warmup_bars, len(warmup))
        if window:
            first_bar, last_bar = window[0].ts, window[-1].ts
            result.first_bar = min(result.first_bar or first_bar, first_bar)
            result.last_bar = max(result.last_bar or last_bar, last_bar)
    result.symbols = [stream.symbol for stream in streams]
    engine.add_rule(engine_rule)
    if len(streams) == 1 and streams[0].detector is None:
        stream = streams[0]
        result.fired = replay(
            engine=engine,
            symbol=stream.symbol,
            asset_class=stream.asset_class,
            warmup=stream.warmup,
            window=stream.window,
            prev_close=stream.prev_close,
        )
    else:
        result.fired = _replay_merged(engine=engine, streams=streams)
    return result


@dataclass
class _Stream:
    symbol: str
    asset_class: str
    warmup: list
    window: list
    prev_close: object = None
    detector: object = None
    day: object = None
    day_close: object = None
    last_close: object = None

    def advance(self, engine: AlertEngine, bar) -> None:
        bar_day = local_day(self.asset_class, bar.ts)
        if self.day is not None and bar_day != self.day:
            self.day_close = self.last_close
        self.day = bar_day
        if self.day_close is not None:
            engine.set_prev_close(self.symbol, self.day_close)
        self.last_close = bar.close


def _replay_merged(*, engine: AlertEngine, streams: list[_Stream]) -> list:
    """`replay` over several instruments at once, minutes in time order; an
    anomaly detector (if any) sees each closed minute and its anomalies reach
    the engine right after it."""
    fired: list[FiredAlert] = []
    for phase, live in (("warmup", False), ("window", True)):
        for stream in streams:
            if stream.prev_close is not None and stream.day_close is None:
                stream.day_close = stream.prev_close
            engine.set_freshness(stream.symbol, "live" if live else "stale")
        merged = sorted(
            (
                (bar.ts, index, bar)
                for index, stream in enumerate(streams)
                for bar in getattr(stream, phase)
            ),
            key=lambda item: (item[0], item[1]),
        )
        for _ts, index, bar in merged:
            stream = streams[index]
            stream.advance(engine, bar)
            for event in bar_events(stream.symbol, bar):
                found = engine.on_event(event)
                if live:
                    fired.extend(found)
            if stream.detector is not None:
                for anomaly in stream.detector.on_minute(bar) or []:
                    found = engine.on_anomaly(anomaly)
                    if live:
                        fired.extend(found)
    return fired


def _anomaly_symbols(subs) -> set[str]:
    return {sub.symbol for sub in subs if sub.kind == "anomaly"}


def _anomaly_detector_factory():
    """A function symbol -> fresh detector from `marketdata.anomalies` (the
    class with `on_minute(bar)`), or None when the module is absent."""
    try:
        from marketdata import anomalies
    except ImportError:
        return None
    detector_class = getattr(anomalies, "AnomalyDetector", None)
    if detector_class is None:
        detector_class = next(
            (
                value
                for value in vars(anomalies).values()
                if isinstance(value, type) and hasattr(value, "on_minute")
            ),
            None,
        )
    if detector_class is None:
        return None

    def build(symbol: str):
        try:
            return detector_class(symbol=symbol)
        except TypeError:
            return detector_class()

    return build


def _day_start(asset_class: str, at: datetime) -> datetime:
    zone = UTC if asset_class in ALWAYS_OPEN_CLASSES else NEW_YORK
    local = at.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
