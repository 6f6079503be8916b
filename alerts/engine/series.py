"""Building what a rule watches (a mixin of `AlertEngine`): the series of a
kind (`alerts.kinds` says which source: tick, frame, volume, pattern,
anomaly), timeframe frames warmed from stored history, and portfolios."""

from __future__ import annotations

from datetime import timedelta

from alerts.engine.composite import PortfolioState
from alerts.engine.index import CrossSeries, EngineRule
from alerts.engine.trackers import MINUTE, Frame, InstrumentState, VolumeTracker
from alerts.kinds import kind_get, timeframe_minutes


class SeriesBuilding:
    def _create_series(self, inst: InstrumentState, rule: EngineRule) -> CrossSeries:
        series = CrossSeries()
        series.epoch = inst.epoch
        inst.series[rule.series_key] = series
        kind = kind_get(rule.kind)
        source = kind.source
        if rule.kind == "price":
            series.value = inst.price
        elif rule.kind == "change_pct":
            series.value = change_pct(inst.price, inst.prev_close)
        elif source == "frame":
            frame = self._frame(inst, timeframe_minutes(rule.timeframe))
            tracker = kind.tracker(rule)
            value = None
            for close in frame.closes:
                result = tracker.on_bar(close)
                if result is not None:
                    value = result
            series.value = value
            frame.trackers.append((tracker, series))
        elif source == "volume":
            tracker = VolumeTracker(int(rule.period or 1))
            for bar in list(self._history(inst))[-tracker.period :]:
                tracker.on_minute_closed(bar[2])
            inst.volumes[tracker.period] = (tracker, series)
            series.value = None
        elif source == "pattern":
            keep = max(kind.history(rule).values())
            frame = self._frame(inst, timeframe_minutes(rule.timeframe), keep)
            frame.patterns[rule.pattern] = series
        elif source == "anomaly":
            inst.anomalies[rule.anomaly] = series
        return series

    def _frame(self, inst: InstrumentState, minutes: int, keep: int = 0) -> Frame:
        """The instrument's frame of `minutes`, warmed from the seed when new;
        `keep` > 0: it keeps that many OHLCV bars (pattern rules)."""
        frame = inst.frames.get(minutes)
        if frame is not None:
            if keep and not frame.bars:
                frame.keep_bars(keep)
                self._frame_replay(inst, frame, closes=False)
            elif keep:
                frame.keep_bars(keep)
            return frame
        frame = inst.frames[minutes] = Frame(minutes)
        if keep:
            frame.keep_bars(keep)
        self._frame_replay(inst, frame, closes=True)
        return frame

    def _frame_replay(self, inst: InstrumentState, frame: Frame, *, closes: bool):
        """Closed buckets resampled by the database, then the minutes of the
        bucket still open (only bars, when the closes are already there)."""
        minutes = frame.minutes
        seed = self._seeding.get(inst.symbol)
        stored = seed.frames.get(minutes) if seed is not None else None
        if not closes:
            # An existing frame asked to keep bars: stored buckets only (its
            # trackers have already seen every close).
            for bar in stored[0] if stored is not None else ():
                frame.bars.append(_bar_dict(bar))
            if stored is None and minutes == 1:
                for bar in self._history(inst):
                    ts, close, volume, open_, high, low = bar
                    frame.bars.append(_bar_dict((ts, open_, high, low, close, volume)))
            return
        if stored is not None:
            bars, last_bucket = stored
            for bar in bars:
                frame.closes.append(bar[4])
                if frame.bars is not None:
                    frame.bars.append(_bar_dict(bar))
            frame.last_minute = last_bucket + timedelta(minutes=minutes) - MINUTE
        for bar in self._history(inst):
            frame.on_minute(bar)

    def _history(self, inst: InstrumentState):
        """Closed minutes to warm a new tracker: stored bars being applied
        now followed by the live ones, else the live ones."""
        seed = self._seeding.get(inst.symbol)
        return seed.minutes if seed is not None else inst.recent

    def _portfolio(self, owner_id: int) -> PortfolioState:
        state = self._portfolios.get(owner_id)
        if state is None:
            state = self._portfolios[owner_id] = PortfolioState(owner_id)
        return state

    def portfolio_set(self, owner_id: int, terms: list) -> None:
        """Install an owner's holdings (from `portfolio_terms`). A change
        re-baselines the portfolio's values (no fire for a trade entered)."""
        state = self._portfolio(owner_id)
        if [tuple(t) for t in terms] == [tuple(t) for t in state.terms]:
            return
        for inst in state.instruments:
            if state in inst.portfolios:
                inst.portfolios.remove(state)
        state.terms = list(terms)
        state.instruments = [self._instrument(t.symbol) for t in terms]
        for inst in state.instruments:
            inst.portfolios.append(state)
        state.own_epoch += 1

    def rule_symbols(self, rule: EngineRule) -> set[str]:
        symbols = set(rule.symbols)
        for sub in rule.conditions_engine or [rule]:
            if sub.kind == "portfolio_value":
                state = self._portfolios.get(rule.owner_id)
                symbols.update(t.symbol for t in state.terms) if state else None
        return symbols

    def watched_symbols(self) -> set[str]:
        """Every instrument a loaded rule reads (the worker streams them)."""
        symbols: set[str] = set()
        for rule in list(self.rules.values()):
            symbols |= self.rule_symbols(rule)
        return symbols


def _bar_dict(row: tuple) -> dict:
    ts, open_, high, low, close, volume = row[:6]
    return {
        "ts": ts,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
    }


def change_pct(price: float | None, prev_close: float | None) -> float | None:
    if price is None or not prev_close:
        return None
    return (price - prev_close) / prev_close * 100.0
