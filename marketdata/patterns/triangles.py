"""Triangles: five consecutive swings (three on one side, two on the other)
between two converging lines.

The upper line runs through the first and last swing high, the lower through
the first and last swing low; a middle swing on a side must lie within
TRI_FIT_ATR × u of its line (u = ATR(14) at the first swing). Over the
shape's span (first to last swing) a line is FLAT if it moves at most
TRI_FLAT_ATR × u, RISING / FALLING if it moves at least TRI_SLOPE_ATR × u:

| upper | lower | triangle |
| --- | --- | --- |
| flat | rising | ascending |
| falling | flat | descending |
| falling | rising | symmetrical |

Anything else (e.g. a line moving between the flat and slope limits) is no
triangle. Confirmed by the first close beyond either line by more than
BREAK_MARGIN_ATR × u, from the bar confirming the fifth swing until the next
swing is confirmed, BREAK_WAIT_BARS bars pass, or the lines meet; the
direction is the breakout's.
"""

from __future__ import annotations

from collections.abc import Iterator

from marketdata.patterns.base import (
    BREAK_MARGIN_ATR,
    MAX_SPAN_BARS,
    Detection,
    Series,
    confidence,
    fmt,
    line_at,
    next_confirmed,
)
from marketdata.patterns.reversals import BREAK_WAIT_BARS

TRI_FIT_ATR = 0.5
"""A middle touch lies within this many ATR of its line."""
TRI_FLAT_ATR = 0.5
"""A line moving at most this many ATR over the shape is flat."""
TRI_SLOPE_ATR = 1.0
"""A line moving at least this many ATR over the shape rises or falls."""

LABELS = {
    "ascending_triangle": "Ascending triangle",
    "descending_triangle": "Descending triangle",
    "symmetrical_triangle": "Symmetrical triangle",
}
SHAPES = {
    ("flat", "rising"): "ascending_triangle",
    ("falling", "flat"): "descending_triangle",
    ("falling", "rising"): "symmetrical_triangle",
}


def _trend(change: float, u: float) -> str | None:
    if abs(change) <= TRI_FLAT_ATR * u:
        return "flat"
    if change >= TRI_SLOPE_ATR * u:
        return "rising"
    if change <= -TRI_SLOPE_ATR * u:
        return "falling"
    return None


def triangles(series: Series) -> Iterator[Detection]:
    swings = series.swings
    close = series.close
    for j in range(4, len(swings)):
        shape = swings[j - 4 : j + 1]
        first, last = shape[0], shape[-1]
        u = series.unit(first.index)
        if not u == u or last.index - first.index > MAX_SPAN_BARS:
            continue
        highs = [s for s in shape if s.kind == "high"]
        lows = [s for s in shape if s.kind == "low"]
        fits = []
        for touches in (highs, lows):
            a, b = touches[0], touches[-1]
            fits += [
                abs(m.price - line_at(a.index, a.price, b.index, b.price, m.index))
                / (TRI_FIT_ATR * u)
                for m in touches[1:-1]
            ]
        if any(f > 1 for f in fits):
            continue
        (h1, h2), (l1, l2) = (highs[0], highs[-1]), (lows[0], lows[-1])

        def upper(i, h1=h1, h2=h2):
            return line_at(h1.index, h1.price, h2.index, h2.price, i)

        def lower(i, l1=l1, l2=l2):
            return line_at(l1.index, l1.price, l2.index, l2.price, i)

        span = last.index - first.index
        up_trend = _trend(upper(first.index + span) - upper(first.index), u)
        low_trend = _trend(lower(first.index + span) - lower(first.index), u)
        kind = SHAPES.get((up_trend, low_trend))
        if kind is None:
            continue
        margin = BREAK_MARGIN_ATR * u
        stop = min(
            next_confirmed(series, j), last.confirmed + BREAK_WAIT_BARS, len(series)
        )
        at = side = None
        for i in range(last.confirmed, stop):
            if upper(i) <= lower(i) or i - first.index > MAX_SPAN_BARS:
                break  # the apex: nothing left to break out of
            if close[i] > upper(i) + margin:
                at, side = i, "above"
                break
            if close[i] < lower(i) - margin:
                at, side = i, "below"
                break
        if at is None:
            continue
        yield Detection(
            kind=kind,
            label=LABELS[kind],
            direction="bullish" if side == "above" else "bearish",
            points=(
                *(series.point(s.index, s.price, "touch") for s in shape),
                series.point(h1.index, h1.price, "upper"),
                series.point(at, upper(at), "upper"),
                series.point(l1.index, l1.price, "lower"),
                series.point(at, lower(at), "lower"),
                series.point(at, float(close[at]), "break"),
            ),
            confirmed_index=at,
            confirmed_at=series.ts[at],
            confidence=confidence(*fits) if fits else 1.0,
            explain=(
                f"{LABELS[kind]}: {up_trend} resistance through {len(highs)} swing highs "
                f"and {low_trend} support through {len(lows)} swing lows, then a close "
                f"at {fmt(close[at])} {side} the "
                f"{'upper' if side == 'above' else 'lower'} line "
                f"({fmt(upper(at) if side == 'above' else lower(at))})."
            ),
        )
