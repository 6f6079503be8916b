"""Flags and pennants: a pole (a fast move) then a short consolidation, then a
breakout in the pole's direction. Bull rule below; bear flags and pennants
are the same rule on the mirrored series.

At each bar i (the breakout candidate):

- Pole top p: the highest high of the FLAG_MAX_BARS + 1 bars before i; the
  consolidation is the bars after p up to i-1, at least FLAG_MIN_BARS of them.
- Pole start s: the lowest low of the POLE_MAX_BARS bars up to p; the pole
  (high[p] - low[s]) is at least POLE_MIN_ATR × u, u = ATR(14) at s.
- The consolidation's lowest low retraces at most FLAG_MAX_RETRACE of the pole.
- Its highs and lows are fitted with least-squares lines; over the
  consolidation the upper moves by dU, the lower by dL (in price):
  PENNANT if dU <= -PENNANT_SLOPE_ATR × u and dL >= PENNANT_SLOPE_ATR × u
  (converging); else FLAG if |dU - dL| <= FLAG_PARALLEL_ATR × u (parallel) and
  (dU + dL) / 2 <= 0 (flat or leaning against the pole).
- Confirmed at i when close[i] is above the upper line extended to i by more
  than BREAK_MARGIN_ATR × u. Each pole top confirms at most once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from marketdata.patterns.base import (
    BREAK_MARGIN_ATR,
    Detection,
    Series,
    confidence,
    fmt,
)

POLE_MIN_ATR = 5.0
"""The pole spans at least this many ATR."""
POLE_MAX_BARS = 15
"""The pole takes at most this many bars."""
FLAG_MIN_BARS = 4
"""The consolidation lasts at least this many bars."""
FLAG_MAX_BARS = 20
"""...and at most this many."""
FLAG_MAX_RETRACE = 0.5
"""The consolidation gives back at most this fraction of the pole."""
FLAG_PARALLEL_ATR = 0.75
"""Flag: the two channel lines' moves over the consolidation differ by at most
this many ATR."""
PENNANT_SLOPE_ATR = 0.3
"""Pennant: the upper line falls and the lower line rises by at least this
many ATR over the consolidation."""

LABELS = {
    "bull_flag": "Bull flag",
    "bear_flag": "Bear flag",
    "bull_pennant": "Bull pennant",
    "bear_pennant": "Bear pennant",
}


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y over x."""
    xm, ym = x.mean(), y.mean()
    slope = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
    return slope, float(ym - slope * xm)


def _candidates(series: Series) -> np.ndarray:
    """Bars i with a pole top p and pole start s meeting the pole rules, as
    rows (i, p, s): the cheap, vectorized part of the rule."""
    high, low, atr = series.high, series.low, series.atr
    n, width = len(high), FLAG_MAX_BARS + 1
    if n <= width:
        return np.empty((0, 3), dtype=np.int64)
    tops = np.argmax(sliding_window_view(high, width)[: n - width], axis=1)
    i = np.arange(width, n)
    p = i - width + tops
    padded = np.concatenate([np.full(POLE_MAX_BARS, np.inf), low])
    starts = np.argmin(sliding_window_view(padded, POLE_MAX_BARS + 1), axis=1)
    s = np.arange(n) - POLE_MAX_BARS + starts  # lowest low of the bars up to j
    s = s[p]
    with np.errstate(invalid="ignore"):
        ok = (i - 1 - p >= FLAG_MIN_BARS) & (high[p] - low[s] >= POLE_MIN_ATR * atr[s])
    return np.column_stack([i[ok], p[ok], s[ok]])


def flags(series: Series) -> Iterator[Detection]:
    bull = series.sign == 1
    high, low, close = series.high, series.low, series.close
    used: set[int] = set()
    for i, p, s in _candidates(series).tolist():
        if p in used:
            continue
        u = series.unit(s)
        pole = high[p] - low[s]
        retrace = (high[p] - low[p + 1 : i].min()) / pole
        if retrace > FLAG_MAX_RETRACE:
            continue
        x = np.arange(p + 1, i, dtype=np.float64)
        su, bu = _fit(x, high[p + 1 : i])
        sl, bl = _fit(x, low[p + 1 : i])
        d_up, d_low = su * (x[-1] - x[0]), sl * (x[-1] - x[0])
        upper = su * i + bu
        if close[i] <= upper + BREAK_MARGIN_ATR * u:
            continue
        if d_up <= -PENNANT_SLOPE_ATR * u and d_low >= PENNANT_SLOPE_ATR * u:
            shape, fit = "pennant", confidence(retrace / FLAG_MAX_RETRACE)
        elif abs(d_up - d_low) <= FLAG_PARALLEL_ATR * u and d_up + d_low <= 0:
            shape = "flag"
            fit = confidence(
                abs(d_up - d_low) / (FLAG_PARALLEL_ATR * u), retrace / FLAG_MAX_RETRACE
            )
        else:
            continue
        used.add(p)
        kind = f"{'bull' if bull else 'bear'}_{shape}"
        first, last = p + 1, i - 1
        yield Detection(
            kind=kind,
            label=LABELS[kind],
            direction="bullish" if bull else "bearish",
            points=(
                series.point(s, low[s], "pole"),
                series.point(p, high[p], "pole"),
                series.point(first, su * first + bu, "upper"),
                series.point(i, upper, "upper"),
                series.point(first, sl * first + bl, "lower"),
                series.point(last, sl * last + bl, "lower"),
                series.point(i, close[i], "break"),
            ),
            confirmed_index=i,
            confirmed_at=series.ts[i],
            confidence=fit,
            explain=(
                f"{LABELS[kind]}: a {pole / u:.1f} ATR pole from "
                f"{fmt(series.real(low[s]))} to {fmt(series.real(high[p]))} in {p - s} "
                f"bars, {i - p - 1} bars of {'converging' if shape == 'pennant' else 'parallel'} "
                f"consolidation giving back {retrace:.0%}, then a close at "
                f"{fmt(series.real(close[i]))} {'above' if bull else 'below'} its "
                f"{'upper' if bull else 'lower'} line."
            ),
        )
