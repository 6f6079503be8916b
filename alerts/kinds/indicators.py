"""Indicator kinds on closed bars of a timeframe: RSI crossing a level, and
the fast moving average crossing the slow one (fast - slow against 0)."""

from __future__ import annotations

from alerts.kinds import (
    BELOW,
    Kind,
    arrow,
    check_timeframe,
    fmt,
    plain,
    timeframe_minutes,
    verb,
)
from alerts.kinds.levels import band_text, check_band

# Bars kept per timeframe for warm-up, and the most minutes ever seeded.
MAX_FRAME_HISTORY = 2_000


class RSIKind(Kind):
    name = "rsi"
    label = "RSI crosses a level"
    fields = ("level", "hysteresis", "timeframe", "period")
    source = "frame"
    banded = True

    def check(self, values, err) -> None:
        level = values.level
        if level is None:
            err("level", "Enter a level.")
        elif not 0 < level < 100:
            err("level", "An RSI level must be between 0 and 100 (exclusive).")
        check_band(values, err, level_limit=True)
        if (
            level is not None
            and values.direction == BELOW
            and values.hysteresis
            and level + values.hysteresis >= 100
        ):
            err("hysteresis", "Level plus re-arm band must stay below 100.")
        check_timeframe(values, err)
        if values.period is None or not 2 <= values.period <= 200:
            err("period", "The RSI period must be between 2 and 200.")

    def describe(self, values) -> str:
        text = (
            f"RSI({values.period}, {values.timeframe}) crosses "
            f"{arrow(values.direction)} {plain(values.level)}"
        )
        return text + band_text(values)

    def series_key(self, rule) -> tuple:
        return ("rsi", rule.timeframe, rule.period)

    def bars(self, rule) -> int:
        return 10 * int(rule.period or 14) + 1

    def history(self, rule) -> dict[int, int]:
        minutes = timeframe_minutes(rule.timeframe)
        return {minutes: min(MAX_FRAME_HISTORY, self.bars(rule))}

    def tracker(self, rule):
        from alerts.engine.trackers import RSITracker

        return RSITracker(int(rule.period or 14))

    def message(self, fire) -> tuple[str, dict]:
        rule = fire.rule
        text = (
            f"{fire.symbol} RSI({rule.period}, {rule.timeframe}) "
            f"{fire.value:.1f} {verb(rule.direction)} {fmt(rule.level)}"
        )
        values = {"rsi": fire.value, "period": rule.period}
        return text, {**values, "timeframe": rule.timeframe}


class MACrossKind(Kind):
    name = "ma_cross"
    label = "Moving-average crossover"
    fields = ("timeframe", "fast_period", "slow_period", "ma_type")
    source = "frame"

    def check(self, values, err) -> None:
        check_timeframe(values, err)
        if values.ma_type not in ("sma", "ema"):
            err("ma_type", "Choose SMA or EMA.")
        fast, slow = values.fast_period, values.slow_period
        if fast is None or not 1 <= fast <= 500:
            err("fast_period", "The fast period must be between 1 and 500.")
        if slow is None or not 2 <= slow <= 500:
            err("slow_period", "The slow period must be between 2 and 500.")
        if fast is not None and slow is not None and fast >= slow:
            err("slow_period", "The slow period must be longer than the fast one.")

    def describe(self, values) -> str:
        ma = (values.ma_type or "sma").upper()
        return (
            f"{ma}({values.fast_period}) crosses {arrow(values.direction)} "
            f"{ma}({values.slow_period}) on {values.timeframe}"
        )

    def series_key(self, rule) -> tuple:
        return ("ma", rule.timeframe, rule.ma_type, rule.fast_period, rule.slow_period)

    def history(self, rule) -> dict[int, int]:
        slow = int(rule.slow_period or 2)
        bars = slow * (5 if rule.ma_type == "ema" else 1) + 1
        return {timeframe_minutes(rule.timeframe): min(MAX_FRAME_HISTORY, bars)}

    def tracker(self, rule):
        from alerts.engine.trackers import MATracker

        return MATracker(
            rule.ma_type, int(rule.fast_period or 1), int(rule.slow_period or 2)
        )

    def message(self, fire) -> tuple[str, dict]:
        rule = fire.rule
        ma = (rule.ma_type or "sma").upper()
        text = (
            f"{fire.symbol} {ma}({rule.fast_period}) {verb(rule.direction)} "
            f"{ma}({rule.slow_period}) on {rule.timeframe} (last {fire.price_text})"
        )
        values = {"fast": rule.fast_period, "slow": rule.slow_period}
        return text, {**values, "ma_type": rule.ma_type, "timeframe": rule.timeframe}


KINDS = (RSIKind(), MACrossKind())
