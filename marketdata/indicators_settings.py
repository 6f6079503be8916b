"""The instrument chart's indicator choices as saved per user
(`Preferences.chart`), their validation, and the spec the bars endpoint takes.

Shape (every indicator present after validation, in this order)::

    {"indicators": {
        "sma": {"on": true, "period": 20},
        "ema": {"on": false, "period": 50},
        "bb": {"on": false, "period": 20, "k": 2.0},
        "rsi": {"on": true, "period": 14},
        "macd": {"on": false, "fast": 12, "slow": 26, "signal": 9},
        "stoch": {"on": false, "k": 14, "d": 3, "smooth": 3},
        "willr": {"on": false, "period": 14},
        "atr": {"on": false, "period": 14}},
     "candles": {"on": false},
     "patterns": {"on": false}}

`candles` turns the candlestick-pattern markers (`marketdata.candles`) on,
`patterns` the chart patterns (`marketdata.patterns`).

Parameters of an indicator that is off are kept, so turning it back on brings
the user's own period back. A partial document is completed with the
defaults; anything else (an unknown indicator or parameter, a period that is
not an integer in range, `on` that is not a boolean) is a ValidationError
naming the field, e.g. ``indicators.rsi.period: ...``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from marketdata.indicators import SPEC_KINDS

MAX_PERIOD = 500  # bars; longer windows would mostly show warm-up
MAX_K = 10.0  # Bollinger band width in standard deviations
LABELS = {
    "sma": "SMA",
    "ema": "EMA",
    "bb": "Bollinger",
    "rsi": "RSI",
    "macd": "MACD",
    "stoch": "Stochastic",
    "willr": "Williams %R",
    "atr": "ATR",
}
# Marker layers over the candles, each saved as {"on": bool}.
LAYERS = ("candles", "patterns")
# The chart's own defaults where they differ from the indicator's (EMA 50 is
# what the chart has always offered).
_DEFAULTS = {"ema": {"period": 50}}


def chart_defaults() -> dict[str, Any]:
    indicators = {}
    for name, kind in SPEC_KINDS.items():
        params = dict(zip(kind.params, kind.defaults, strict=True))
        params.update(_DEFAULTS.get(name, {}))
        indicators[name] = {
            "on": False,
            **{
                p: (float(v) if kind.floats[i] else int(v))
                for i, (p, v) in enumerate(params.items())
            },
        }
    return {
        "indicators": indicators,
        **{layer: {"on": False} for layer in LAYERS},
    }


def _number(field: str, value: Any, *, low: float, high: float, integer: bool):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field}: expected a number, got {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise ValidationError(f"{field}: expected an integer, got {value!r}")
        value = int(value)
    elif value != value:
        raise ValidationError(f"{field}: expected a number, got NaN")
    if not low <= value <= high:
        raise ValidationError(
            f"{field}: must be between {low:g} and {high:g}, got {value!r}"
        )
    return value if integer else float(value)


def chart_settings_validate(value: Any) -> dict[str, Any]:
    """The complete, normalized settings for `value`, or ValidationError."""
    if value is None or value == {}:
        return chart_defaults()
    if not isinstance(value, dict):
        raise ValidationError("chart: expected an object")
    unknown = sorted(set(value) - {"indicators", *LAYERS})
    if unknown:
        raise ValidationError(f"chart: unknown key(s) {', '.join(unknown)}")
    result = chart_defaults()
    for layer in LAYERS:
        entry = value.get(layer, {})
        if not isinstance(entry, dict) or set(entry) - {"on"}:
            raise ValidationError(
                f'{layer}: expected {{"on": true}} or {{"on": false}}'
            )
        if "on" in entry:
            if not isinstance(entry["on"], bool):
                raise ValidationError(f"{layer}.on: expected true or false")
            result[layer]["on"] = entry["on"]
    given = value.get("indicators", {})
    if not isinstance(given, dict):
        raise ValidationError("indicators: expected an object")
    unknown = sorted(set(given) - set(SPEC_KINDS))
    if unknown:
        raise ValidationError(
            f"indicators: unknown indicator(s) {', '.join(unknown)}; "
            f"known: {', '.join(SPEC_KINDS)}"
        )
    for name, entry in given.items():
        field = f"indicators.{name}"
        if not isinstance(entry, dict):
            raise ValidationError(f"{field}: expected an object")
        kind = SPEC_KINDS[name]
        unknown = sorted(set(entry) - {"on", *kind.params})
        if unknown:
            raise ValidationError(
                f"{field}: unknown parameter(s) {', '.join(unknown)}; "
                f"{name} takes {', '.join(kind.params)}"
            )
        target = result["indicators"][name]
        if "on" in entry:
            if not isinstance(entry["on"], bool):
                raise ValidationError(f"{field}.on: expected true or false")
            target["on"] = entry["on"]
        for i, param in enumerate(kind.params):
            if param in entry:
                floating = kind.floats[i]
                target[param] = _number(
                    f"{field}.{param}",
                    entry[param],
                    low=kind.minimum[i],
                    high=MAX_K if floating else MAX_PERIOD,
                    integer=not floating,
                )
    macd = result["indicators"]["macd"]
    if macd["fast"] >= macd["slow"]:
        raise ValidationError(
            "indicators.macd.fast: must be shorter than the slow period"
        )
    return result


def chart_spec(settings: dict[str, Any]) -> str:
    """`"sma:20,rsi:14"` for the indicators that are on (validated settings)."""
    parts = []
    for name, entry in settings["indicators"].items():
        if entry.get("on"):
            values = [entry[p] for p in SPEC_KINDS[name].params]
            parts.append(name + "".join(f":{v:g}" for v in values))
    return ",".join(parts)


def chart_controls(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per indicator for the page's controls: name, label, on, and
    its parameters with their bounds."""
    controls = []
    for name, entry in settings["indicators"].items():
        kind = SPEC_KINDS[name]
        params = []
        for i, param in enumerate(kind.params):
            floating = kind.floats[i]
            params.append(
                {
                    "name": param,
                    "value": entry[param],
                    "min": kind.minimum[i],
                    "max": MAX_K if floating else MAX_PERIOD,
                    "step": 0.1 if floating else 1,
                }
            )
        controls.append(
            {"name": name, "label": LABELS[name], "on": entry["on"], "params": params}
        )
    return controls
