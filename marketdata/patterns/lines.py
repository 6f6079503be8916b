"""Trend lines: an uptrend line through rising swing lows, a downtrend line
through falling swing highs (the same rule on the mirrored series), and their
breaks.

When a swing low s3 is confirmed, every pair of earlier swing lows s1 < s2
with s1 no more than LINE_WINDOW_BARS bars before it, s2 higher than s1 and
at least LINE_MIN_GAP_BARS between touches, draws a line; it is a trend line
if s3 lies within LINE_TOL_ATR × u of it (u = ATR(14) at s1) and no close
from s1 to the bar confirming s3 fell below it by more than BREAK_MARGIN_ATR ×
u. The best-fitting pair wins; the line is confirmed at the bar that confirmed
s3. Only a line's third touch reports it: no other swing low of the window
may lie within the tolerance of the line (a fourth touch repeats nothing).

The line BREAKS (a separate detection) at the first later close below it by
more than BREAK_MARGIN_ATR × u, within MAX_SPAN_BARS of its first touch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from marketdata.patterns.base import (
    BREAK_MARGIN_ATR,
    MAX_SPAN_BARS,
    Detection,
    Series,
    Swing,
    confidence,
    fmt,
    line_at,
)

LINE_TOL_ATR = 0.3
"""The third touch lies within this many ATR of the line through the first two."""
LINE_MIN_GAP_BARS = 5
"""At least this many bars between consecutive touches."""
LINE_WINDOW_BARS = 150
"""The first touch is at most this many bars before the third is confirmed."""

LABELS = {
    "trendline_up": "Uptrend line",
    "trendline_down": "Downtrend line",
    "trendline_up_break": "Uptrend line break",
    "trendline_down_break": "Downtrend line break",
}


def _closes_hold(series: Series, s1: Swing, s2: Swing, start: int, stop: int, margin):
    """True if no close in [start, stop] is below the line by more than margin."""
    idx = np.arange(start, stop + 1)
    line = s1.price + (s2.price - s1.price) * (idx - s1.index) / (s2.index - s1.index)
    return not bool(np.any(series.close[start : stop + 1] < line - margin))


def trend_lines(series: Series) -> Iterator[Detection]:
    up = series.sign == 1
    kind = "trendline_up" if up else "trendline_down"
    lows = [s for s in series.swings if s.kind == "low"]
    units = series.atr.tolist()
    start = 0
    for k, s3 in enumerate(lows):
        c3 = s3.confirmed
        while start < k and c3 - lows[start].index > LINE_WINDOW_BARS:
            start += 1
        # Lows in the window: the pair comes from them, and no other of them
        # may touch the line (s3 is its third touch, not a later one).
        window = lows[start:k]
        best = None
        for i2 in range(len(window) - 1, 0, -1):
            s2 = window[i2]
            if s3.index - s2.index < LINE_MIN_GAP_BARS:
                continue
            for s1 in window[:i2]:
                if s2.price <= s1.price or s2.index - s1.index < LINE_MIN_GAP_BARS:
                    continue
                u = units[s1.index]
                tol = LINE_TOL_ATR * u
                slope = (s2.price - s1.price) / (s2.index - s1.index)
                dev = abs(s3.price - s1.price - slope * (s3.index - s1.index))
                if not dev <= tol or (best is not None and dev / tol >= best[0]):
                    continue  # off the line (or NaN while ATR warms up)
                if any(
                    abs(o.price - s1.price - slope * (o.index - s1.index)) <= tol
                    for o in window
                    if o is not s1 and o is not s2
                ):
                    continue
                if _closes_hold(series, s1, s2, s1.index, c3, BREAK_MARGIN_ATR * u):
                    best = (dev / tol, s1, s2, tol, u)
        if best is None:
            continue
        fit, s1, s2, tol, u = best
        broken = _first_break(series, s1, s2, c3 + 1, BREAK_MARGIN_ATR * u)
        end = line_at(s1.index, s1.price, s2.index, s2.price, c3)
        word = "lows" if up else "highs"
        yield Detection(
            kind=kind,
            label=LABELS[kind],
            direction="bullish" if up else "bearish",
            points=(
                series.point(s1.index, s1.price, "touch"),
                series.point(s2.index, s2.price, "touch"),
                series.point(s3.index, s3.price, "touch"),
                series.point(s1.index, s1.price, "trendline"),
                series.point(c3, end, "trendline"),
            ),
            confirmed_index=c3,
            confirmed_at=series.ts[c3],
            confidence=confidence(fit),
            explain=(
                f"{LABELS[kind]}: three {'rising' if up else 'falling'} swing {word} "
                f"({fmt(series.real(s1.price))}, {fmt(series.real(s2.price))}, "
                f"{fmt(series.real(s3.price))}) on one line, the third within "
                f"{fit * LINE_TOL_ATR:.2f} ATR of it, no close through it."
            ),
        )
        if broken is not None:
            yield _break_detection(series, s1, s2, broken, (s1, s2, s3), fit)


def _first_break(series: Series, s1: Swing, s2: Swing, start: int, margin: float):
    stop = min(len(series) - 1, s1.index + MAX_SPAN_BARS)
    if start > stop:
        return None
    idx = np.arange(start, stop + 1)
    line = s1.price + (s2.price - s1.price) * (idx - s1.index) / (s2.index - s1.index)
    below = np.flatnonzero(series.close[start : stop + 1] < line - margin)
    return int(start + below[0]) if below.size else None


def _break_detection(
    series: Series, s1: Swing, s2: Swing, at: int, touches, fit: float
) -> Detection:
    up = series.sign == 1
    kind = "trendline_up_break" if up else "trendline_down_break"
    line = line_at(s1.index, s1.price, s2.index, s2.price, at)
    close = float(series.close[at])
    return Detection(
        kind=kind,
        label=LABELS[kind],
        direction="bearish" if up else "bullish",
        points=(
            *(series.point(t.index, t.price, "touch") for t in touches),
            series.point(s1.index, s1.price, "trendline"),
            series.point(at, line, "trendline"),
            series.point(at, close, "break"),
        ),
        confirmed_index=at,
        confirmed_at=series.ts[at],
        confidence=confidence(fit),  # the line's own fit
        explain=(
            f"{LABELS[kind]}: a close at {fmt(series.real(close))} "
            f"{'below' if up else 'above'} the {LABELS[kind[:-6]].lower()} "
            f"(at {fmt(series.real(line))}) drawn since "
            f"{series.ts[s1.index]:%Y-%m-%d %H:%M} UTC."
        ),
    )
