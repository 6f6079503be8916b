"""Event kinds: a chart pattern confirming on a timeframe, and an anomaly of
the instrument. They fire on the event itself (no level, no re-arm band); as
a condition of a multi-condition rule they are true for the bar (pattern:
until the next bar of the timeframe closes) or the minute (anomaly) the event
happens in.

The detectors live in `marketdata.patterns` and `marketdata.anomalies`; they
are imported when first needed, so these kinds load without them (rules then
get a clear "not available" message, and anomaly kinds fall back to the
three documented names).
"""

from __future__ import annotations

from alerts.kinds import (
    TIMEFRAME_MINUTES,
    Kind,
    check_timeframe,
    timeframe_minutes,
)

# Short names of the anomaly kinds `marketdata.anomalies.ANOMALY_KINDS` names.
DEFAULT_ANOMALY_KINDS = {
    "return_spike": "Return spike",
    "volume_surge": "Volume surge",
    "trade_rate_surge": "Trade-rate surge",
}
DEFAULT_LOOKBACK_BARS = 200


def patterns_module():
    """`marketdata.patterns`, or None when this server has no detector."""
    try:
        from marketdata import patterns
    except ImportError:
        return None
    return patterns


def pattern_kinds() -> dict[str, str]:
    module = patterns_module()
    return dict(getattr(module, "PATTERN_KINDS", {}) or {}) if module else {}


def lookback_bars() -> int:
    module = patterns_module()
    return int(getattr(module, "LOOKBACK_BARS", DEFAULT_LOOKBACK_BARS))


def anomaly_kinds() -> dict[str, str]:
    """Anomaly kind -> its short name (the detector's labels explain more)."""
    try:
        from marketdata.anomalies import ANOMALY_KINDS
    except ImportError:
        return dict(DEFAULT_ANOMALY_KINDS)
    return {name: DEFAULT_ANOMALY_KINDS.get(name, name) for name in ANOMALY_KINDS}


class PatternKind(Kind):
    name = "pattern"
    label = "Chart pattern confirms"
    fields = ("timeframe", "pattern")
    directional = False
    source = "pattern"
    event = True

    def check(self, values, err) -> None:
        check_timeframe(values, err)
        known = pattern_kinds()
        if not known:
            err("pattern", "Pattern detection is not available on this server.")
        elif values.pattern not in known:
            err("pattern", f"Choose a pattern: {', '.join(sorted(known))}.")

    def check_data(self, values, instrument, err) -> None:
        """Patterns need stored bars on the timeframe."""
        from alerts.selectors import bars_exist

        if values.timeframe in TIMEFRAME_MINUTES and not bars_exist(
            instrument=instrument, timeframe=values.timeframe
        ):
            err(
                "timeframe",
                f"No {values.timeframe} bars are stored for {instrument.symbol}: "
                "pattern alerts need history on that timeframe (load history "
                "first, or pick another timeframe).",
            )

    def describe(self, values) -> str:
        label = pattern_kinds().get(values.pattern, values.pattern)
        return f"{label} pattern confirms on {values.timeframe}"

    def series_key(self, rule) -> tuple:
        return ("pattern", rule.timeframe, rule.pattern)

    def history(self, rule) -> dict[int, int]:
        return {timeframe_minutes(rule.timeframe): lookback_bars()}

    def message(self, fire) -> tuple[str, dict]:
        rule, detection = fire.rule, fire.event
        label = getattr(detection, "label", "") or rule.pattern
        text = f"{fire.symbol} {label} confirmed on {rule.timeframe}"
        explain = getattr(detection, "explain", "")
        if explain:
            text += f": {explain}"
        values = {
            "pattern": rule.pattern,
            "timeframe": rule.timeframe,
            "direction": getattr(detection, "direction", ""),
            "confidence": getattr(detection, "confidence", None),
            "confirmed_at": _iso(getattr(detection, "confirmed_at", None)),
        }
        return text, values


class AnomalyKind(Kind):
    name = "anomaly"
    label = "Anomaly (spike or surge)"
    fields = ("anomaly",)
    directional = False
    source = "anomaly"
    event = True

    def check(self, values, err) -> None:
        known = anomaly_kinds()
        if values.anomaly not in known:
            err("anomaly", f"Choose an anomaly: {', '.join(known)}.")

    def describe(self, values) -> str:
        label = anomaly_kinds().get(values.anomaly, values.anomaly)
        return f"{label.lower()} seen"

    def series_key(self, rule) -> tuple:
        return ("anomaly", rule.anomaly)

    def history(self, rule) -> dict[int, int]:
        return {}

    def message(self, fire) -> tuple[str, dict]:
        anomaly = fire.event
        label = anomaly_kinds().get(fire.rule.anomaly, fire.rule.anomaly)
        text = f"{fire.symbol} {label.lower()}"
        explain = getattr(anomaly, "explain", "")
        if explain:
            text += f": {explain}"
        values = {
            "anomaly": fire.rule.anomaly,
            "score": getattr(anomaly, "score", None),
            "baseline": getattr(anomaly, "baseline", None),
            "anomaly_direction": getattr(anomaly, "direction", ""),
        }
        return text, values


def _iso(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


KINDS = (PatternKind(), AnomalyKind())
