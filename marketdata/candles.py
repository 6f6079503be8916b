"""Candlestick patterns: which exist, what they mean, and where they fire.

Every pattern equals the TA-Lib function named in `TALIB_FUNCTIONS` on the
same bars, value for value, with TA-Lib's default candle settings and
penetrations (morning/evening star 0.3, dark cloud cover 0.5); the rules and
the arithmetic that makes them equal live in `marketdata.candle_rules`.

- `detect(open, high, low, close)` -> ``{pattern id: int32 array}`` (100,
  -100, ±80 for partial engulfing/harami, 0 elsewhere and during the first
  `lookback` bars, as TA-Lib returns them).
- `candle_events(rows, skip=...)` -> the bars where a pattern fires, for the
  API and the chart: time, pattern id, label, direction, value, explanation.

Each pattern's value at a bar depends on up to `WARMUP` bars before it (the
10-bar averages TA-Lib compares candles with), so callers read that many
older bars before the first one they show.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from marketdata.candle_rules import RULES, Candles, evaluate

CANDLE_PATTERNS: dict[str, str] = {
    "doji": "Doji",
    "hammer": "Hammer",
    "hanging_man": "Hanging man",
    "shooting_star": "Shooting star",
    "engulfing": "Engulfing",
    "harami": "Harami",
    "morning_star": "Morning star",
    "evening_star": "Evening star",
    "three_white_soldiers": "Three white soldiers",
    "three_black_crows": "Three black crows",
    "piercing": "Piercing",
    "dark_cloud_cover": "Dark cloud cover",
}

EXPLANATIONS: dict[str, str] = {
    "doji": "Open and close almost equal (body at most 10% of the average "
    "high-low range of the 10 bars before): indecision.",
    "hammer": "Small body on a long lower shadow, almost no upper shadow, at or "
    "near the previous low: sellers were pushed back; bullish after a fall.",
    "hanging_man": "Hammer shape (small body, long lower shadow, almost no upper "
    "shadow) at or near the previous high: a warning after a rise; bearish.",
    "shooting_star": "Small body under a long upper shadow, almost no lower "
    "shadow, gapping up from the previous body: the rally was rejected; bearish.",
    "engulfing": "The body engulfs the previous opposite-colour body: bullish "
    "when white engulfs black, bearish when black engulfs white "
    "(80 when the bodies share an end).",
    "harami": "A short body inside the previous long body: the move stalls; "
    "opposite in sign to the long candle (80 when the bodies share an end).",
    "morning_star": "A long black candle, a short body gapping below it, then a "
    "white candle closing at least 30% into the first body: bullish reversal.",
    "evening_star": "A long white candle, a short body gapping above it, then a "
    "black candle closing at least 30% into the first body: bearish reversal.",
    "three_white_soldiers": "Three rising white candles, each opening within or "
    "near the previous body and closing near its high: steady buying; bullish.",
    "three_black_crows": "After a white candle, three falling black candles, each "
    "opening inside the previous body and closing near its low: bearish.",
    "piercing": "A long black candle, then a long white one opening below its "
    "low and closing above its midpoint: bullish reversal.",
    "dark_cloud_cover": "A long white candle, then a black one opening above its "
    "high and closing below its midpoint: bearish reversal.",
}

TALIB_FUNCTIONS: dict[str, str] = {
    "doji": "CDLDOJI",
    "hammer": "CDLHAMMER",
    "hanging_man": "CDLHANGINGMAN",
    "shooting_star": "CDLSHOOTINGSTAR",
    "engulfing": "CDLENGULFING",
    "harami": "CDLHARAMI",
    "morning_star": "CDLMORNINGSTAR",
    "evening_star": "CDLEVENINGSTAR",
    "three_white_soldiers": "CDL3WHITESOLDIERS",
    "three_black_crows": "CDL3BLACKCROWS",
    "piercing": "CDLPIERCING",
    "dark_cloud_cover": "CDLDARKCLOUDCOVER",
}

# Bars before which TA-Lib leaves each pattern at 0.
LOOKBACK: dict[str, int] = {name: RULES[name][0] for name in CANDLE_PATTERNS}
WARMUP = max(LOOKBACK.values())


def pattern(name: str, opens, highs, lows, closes) -> np.ndarray:
    """One pattern over the bars; ValueError for an unknown name or bad input."""
    if name not in CANDLE_PATTERNS:
        raise ValueError(
            f"unknown candlestick pattern {name!r}; known: {', '.join(CANDLE_PATTERNS)}"
        )
    return evaluate(Candles(opens, highs, lows, closes), name)


def detect(opens, highs, lows, closes) -> dict[str, np.ndarray]:
    """Every pattern over the bars, as TA-Lib's CDL* functions return them.

    Inputs are 1-D sequences of equal length with finite values (ValueError
    otherwise)."""
    candles = Candles(opens, highs, lows, closes)
    return {name: evaluate(candles, name) for name in CANDLE_PATTERNS}


def direction(name: str, value: int) -> str:
    """ "bullish", "bearish", or "neutral" (a doji says nothing of direction)."""
    if name == "doji":
        return "neutral"
    return "bullish" if value > 0 else "bearish"


def candle_events(*, rows, skip: int = 0) -> list[dict]:
    """The bars of `rows` (``(ts, open, high, low, close, ...)``, oldest first)
    where a pattern fires, past the first `skip` (warm-up) rows, in time order:
    ``{"t": epoch seconds, "pattern", "label", "direction", "value",
    "explanation"}``."""
    if not rows:
        return []
    columns = list(zip(*rows, strict=False))
    found = detect(columns[1], columns[2], columns[3], columns[4])
    times = columns[0]
    events = []
    for name, values in found.items():
        for index in np.flatnonzero(values[skip:]).tolist():
            value = int(values[skip + index])
            ts = times[skip + index]
            events.append(
                {
                    "t": int(ts.timestamp()) if isinstance(ts, datetime) else int(ts),
                    "pattern": name,
                    "label": CANDLE_PATTERNS[name],
                    "direction": direction(name, value),
                    "value": value,
                    "explanation": EXPLANATIONS[name],
                }
            )
    order = list(CANDLE_PATTERNS)
    events.sort(key=lambda e: (e["t"], order.index(e["pattern"])))
    return events
