"""`AlertEngine`: the index of rules per instrument and the evaluation of
events against it (no I/O; loading is `alerts.engine.loading`, event kinds
`alerts.engine.events`). See the package docstring for the whole picture."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from alerts.engine.composite import Composite, PortfolioState
from alerts.engine.events import Events
from alerts.engine.index import CrossSeries, EngineRule
from alerts.engine.loading import Loading, Seed, portfolio_owners
from alerts.engine.messages import Fire, FiredAlert, fired_build, price_text
from alerts.engine.series import SeriesBuilding, change_pct
from alerts.engine.trackers import InstrumentState
from core.minutes import MINUTE, floor_minute


class AlertEngine(Loading, SeriesBuilding, Events):
    """Evaluates active alert rules for a set of canonical symbols.

    `symbols`: the instruments whose single-instrument rules it loads (None:
    all). `owns(symbol)`: the stream worker's shard test; multi-condition and
    portfolio rules fire only on the shard that owns their home symbol
    (`EngineRule.home`), which reads the other instruments' prices from the
    snapshot store (`foreign_symbols` / `apply_foreign`)."""

    def __init__(
        self,
        symbols: Iterable[str] | None = None,
        *,
        seed_from_db: bool = True,
        owns=None,
    ) -> None:
        self.symbols: frozenset[str] | None = (
            frozenset(symbols) if symbols is not None else None
        )
        self.owns = owns
        self.seed_from_db = seed_from_db
        self.rules: dict[int, EngineRule] = {}
        self._instruments: dict[str, InstrumentState] = {}
        self._portfolios: dict[int, PortfolioState] = {}
        self._portfolio_owners: set[int] = set()
        self._portfolios_at = 0.0
        self._composites: dict[int, Composite] = {}
        #: ids of rules without one instrument (multi, portfolio)
        self._spanning: set[int] = set()
        self._expiring: list[tuple[datetime, int]] = []
        self._version: int | None = None
        self._missed_changes = False
        self._seeding: dict[str, Seed] = {}
        self.suppressed_count = 0

    @staticmethod
    def clock() -> datetime:
        return datetime.now(UTC)

    def _owns(self, home: str) -> bool:
        """Whether this engine evaluates a rule with this home symbol."""
        if self.owns is not None:
            return self.owns(home)
        return self.symbols is None or home in self.symbols

    # -- the index ------------------------------------------------------------------
    def add_rule(self, rule: EngineRule) -> None:
        """Insert or update one rule (keeps its armed state if unchanged)."""
        single = not rule.conditions_engine and rule.kind != "portfolio_value"
        if single and self.symbols is not None and rule.symbol not in self.symbols:
            self.remove_rule(rule.id)  # moved to another shard's instrument
            return
        existing = self.rules.get(rule.id)
        if existing is not None:
            if existing.signature() == rule.signature():
                for name in ("cooldown", "one_shot", "notify_email", "note"):
                    setattr(existing, name, getattr(rule, name))
                existing.owner_id = rule.owner_id
                if rule.last_fired and (
                    existing.last_fired is None or rule.last_fired > existing.last_fired
                ):
                    existing.last_fired = rule.last_fired
                return
            if existing.last_fired and (
                rule.last_fired is None or existing.last_fired > rule.last_fired
            ):
                rule.last_fired = existing.last_fired
            self.remove_rule(rule.id)
        if rule.conditions_engine:
            contexts = [self._place(sub, parent=rule) for sub in rule.conditions_engine]
            composite = Composite(rule, contexts)
            for sub in rule.conditions_engine:
                sub.parent = composite
            self._composites[rule.id] = composite
            composite.evaluate(self.clock())
        else:
            self._place(rule)
        if rule.kind == "portfolio_value" or rule.conditions_engine:
            self._portfolio_owners |= portfolio_owners([rule])
            self._spanning.add(rule.id)
        self.rules[rule.id] = rule

    def _place(self, rule: EngineRule, parent: EngineRule | None = None):
        """Put a rule (or a condition) in its series; return the state it
        reads (an InstrumentState or a PortfolioState)."""
        if parent is not None:
            rule.cooldown, rule.owner_id = 0.0, parent.owner_id
        if rule.kind == "portfolio_value":
            ctx = self._portfolio(rule.owner_id)
            series = ctx.series.get(rule.measure)
            if series is None:
                series = ctx.series[rule.measure] = CrossSeries()
                series.epoch = ctx.epoch
                series.value = ctx.values()[rule.measure]
        else:
            ctx = self._instrument(rule.symbol)
            if rule.instrument_id:
                ctx.instrument_id = rule.instrument_id
            series = ctx.series.get(rule.series_key)
            if series is None:
                series = self._create_series(ctx, rule)
        series.add(rule)
        if parent is not None:
            series.flipped.clear()
        return ctx

    def remove_rule(self, rule_id: int) -> None:
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return
        for sub in rule.conditions_engine or [rule]:
            if sub.series is not None:
                sub.series.remove(sub)
        self._composites.pop(rule_id, None)
        self._spanning.discard(rule_id)

    # -- state from the worker ----------------------------------------------------
    def set_freshness(self, symbol: str, state: str) -> None:
        """Feed freshness: nothing fires while "stale"; on leaving "stale" every
        value of the instrument re-baselines on its next update (no fire for
        what moved during the gap)."""
        inst = self._instrument(symbol)
        if state == "stale":
            inst.live = False
        elif not inst.live:
            inst.live = True
            inst.epoch += 1

    def set_prev_close(
        self, symbol: str, prev_close: float | Decimal | str | None
    ) -> None:
        inst = self._instrument(symbol)
        value = _float(prev_close)
        if value is None or value <= 0 or value == inst.prev_close:
            return
        inst.prev_close = value
        inst.prev_close_decimal = Decimal(str(prev_close))
        series = inst.series.get(("change_pct",))
        if series is not None:
            # A new session's reference is not a market move.
            series.epoch = -1
        for state in inst.portfolios:
            series = state.series.get("day_pl")
            if series is not None:
                series.epoch = -1

    # -- evaluation ------------------------------------------------------------------
    def on_event(self, event, snapshot: dict | None = None) -> list[FiredAlert]:
        """Evaluate one normalized event; return the alerts it fires."""
        symbol = event.symbol
        if self.symbols is not None and symbol not in self.symbols:
            return []
        kind = event.kind
        if kind == "quote" or kind == "status" or kind == "control":
            if snapshot:
                self._apply_snapshot(symbol, snapshot)
            return []
        inst = self._instruments.get(symbol)
        if inst is None:
            inst = self._instrument(symbol)
        if snapshot:
            self._apply_snapshot(symbol, snapshot)
        fired: list[FiredAlert] = []
        if kind == "trade":
            self._on_trade(inst, event, fired)
        elif kind == "bar":
            self._on_bar(inst, event, fired)
        if self._expiring:
            self._expire(event.ts, fired)
        return fired

    def on_clock(self, now: datetime, grace: float = 3.0) -> list[FiredAlert]:
        """Close minutes built from trades once `now` is `grace` seconds past
        their end (so a quiet instrument's bar still closes). Optional."""
        fired: list[FiredAlert] = []
        limit = now - timedelta(seconds=grace) - MINUTE
        for inst in self._instruments.values():
            if inst.minute is not None and not inst.bars_feed and inst.minute <= limit:
                self._close_minute(inst, inst.minute_bar(), now, fired)
                inst.minute = None
                inst.minute_volume = 0.0
        if self._expiring:
            self._expire(now, fired)
        return fired

    def _apply_snapshot(self, symbol: str, snapshot: dict) -> None:
        freshness = snapshot.get("freshness")
        if freshness:
            self.set_freshness(symbol, freshness)
        prev_close = snapshot.get("prev_close")
        if prev_close is not None:
            self.set_prev_close(symbol, prev_close)

    def _on_trade(self, inst: InstrumentState, event, fired: list[FiredAlert]) -> None:
        ts = event.ts
        price = float(event.price)
        inst.saw_trade = True
        minute = floor_minute(ts)
        if inst.minute is None or minute > inst.minute:
            if inst.minute is not None and not inst.bars_feed:
                self._close_minute(inst, inst.minute_bar(), ts, fired)
            inst.minute = minute
            inst.minute_volume = 0.0
            inst.minute_open = inst.minute_high = inst.minute_low = price
            self._volume_update(inst, ts, fired)
        if minute >= inst.minute:
            inst.minute_close = price
            inst.minute_high = max(inst.minute_high, price)
            inst.minute_low = min(inst.minute_low, price)
            inst.minute_volume += float(event.size)
        inst.price_decimal = event.price
        self._price_update(inst, price, ts, fired)
        if inst.volumes:
            self._volume_update(inst, ts, fired)

    def _on_bar(self, inst: InstrumentState, bar, fired: list[FiredAlert]) -> None:
        if bar.timeframe != "1m" or bar.updated:
            return
        ts = bar.ts
        close = float(bar.close)
        volume = float(bar.volume)
        if not inst.saw_trade:
            # Bars-only feed: the bar is the price and the minute volume.
            inst.price_decimal = bar.close
            if inst.minute is None or ts > inst.minute:
                inst.minute = ts
            inst.minute_volume = volume
            inst.minute_close = close
            self._price_update(inst, close, ts, fired)
            if inst.volumes:
                self._volume_update(inst, ts, fired)
        elif not bar.closed and inst.minute == ts and volume > inst.minute_volume:
            inst.minute_volume = volume
            if inst.volumes:
                self._volume_update(inst, ts, fired)
        if bar.closed:
            inst.bars_feed = True
            closed = (
                ts,
                close,
                volume,
                float(bar.open),
                float(bar.high),
                float(bar.low),
            )
            self._close_minute(inst, closed, ts + MINUTE, fired)
            if not inst.saw_trade:
                inst.minute = None
                inst.minute_volume = 0.0
                if inst.volumes:
                    self._volume_update(inst, ts + MINUTE, fired)

    def _close_minute(
        self, inst: InstrumentState, bar, now: datetime, fired: list[FiredAlert]
    ) -> None:
        ts = bar[0]
        if inst.last_closed is not None and ts <= inst.last_closed:
            return
        inst.last_closed = ts
        inst.recent.append(bar)
        for tracker, _series in inst.volumes.values():
            tracker.on_minute_closed(bar[2])
        for frame in inst.frames.values():
            updates, closed = frame.on_minute(bar)
            for series, value in updates:
                self._series_update(inst, series, value, now, fired)
            if closed is not None and frame.patterns:
                self._patterns_check(inst, frame, now, fired)

    def _price_update(
        self, inst: InstrumentState, price: float, ts: datetime, fired: list
    ) -> None:
        inst.price = price
        series = inst.series.get(("price",))
        if series is not None:
            self._series_update(inst, series, price, ts, fired)
        if inst.prev_close is not None:
            series = inst.series.get(("change_pct",))
            if series is not None:
                value = change_pct(price, inst.prev_close)
                self._series_update(inst, series, value, ts, fired)
        for state in inst.portfolios:
            if state.series:
                values = state.values()
                for measure, series in state.series.items():
                    if values[measure] is not None:
                        self._series_update(state, series, values[measure], ts, fired)

    def _volume_update(self, inst: InstrumentState, ts: datetime, fired: list) -> None:
        for tracker, series in inst.volumes.values():
            ratio = tracker.ratio(inst.minute_volume)
            if ratio is not None:
                self._series_update(inst, series, ratio, ts, fired)

    def _series_update(
        self, ctx, series: CrossSeries, value: float, ts: datetime, fired: list
    ) -> None:
        previous = series.value
        crossed = series.update(value)
        rebaseline = series.epoch != ctx.epoch
        if rebaseline:
            # First update after a stale gap (or a new previous close): the
            # move is re-baselined, nothing fires.
            series.epoch = ctx.epoch
        if series.flipped:
            self._conditions_changed(series, ts, fired, quiet=rebaseline)
        if rebaseline or not crossed or not ctx.live:
            return
        for rule in crossed:
            if rule.parent is not None:
                continue
            self._fire(rule, ctx, ts, fired, value=value, previous=previous)

    def _fire(self, rule, ctx, ts, fired, *, value, previous, event=None) -> None:
        """Record one fire of `rule` unless its cooldown holds it back (or
        another shard owns it: rules without one instrument)."""
        if not rule.symbol and not self._owns(rule.home):
            return
        last = rule.last_fired
        if last is not None and (ts - last).total_seconds() < rule.cooldown:
            self.suppressed_count += 1
            return
        rule.last_fired = ts
        volume, average = getattr(ctx, "minute_volume", 0.0), None
        if rule.kind == "volume_spike":
            tracker = ctx.volumes.get(int(rule.period or 1))
            average = tracker[0].average if tracker else None
        price = getattr(ctx, "price_decimal", None)
        fire = Fire(
            rule=rule,
            symbol=ctx.symbol,
            value=value,
            previous=previous,
            price_text=price_text(price),
            prev_close=getattr(ctx, "prev_close", None),
            volume=volume,
            average=average,
            event=event,
        )
        fired.append(
            fired_build(
                rule=rule,
                fire=fire,
                ts=ts,
                instrument_id=rule.instrument_id or getattr(ctx, "instrument_id", 0),
                price=price,
            )
        )
        if rule.one_shot:
            self.remove_rule(rule.id)

    # -- helpers -----------------------------------------------------------------------
    def _instrument(self, symbol: str) -> InstrumentState:
        inst = self._instruments.get(symbol)
        if inst is None:
            inst = self._instruments[symbol] = InstrumentState(symbol)
        return inst


def _float(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None
