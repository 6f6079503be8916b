"""Shared pieces of the chart-pattern detectors: the result types, the bar
arrays every detector reads (`Series`), and the few rules common to all.

Prices are measured in ATR units: `u`, the pattern's unit, is ATR(14) (Wilder,
`marketdata.indicators.atr`) at the pattern's FIRST point, so a tolerance
means the same on a 2-dollar stock and on bitcoin, and later bars never change
how an earlier part of the pattern is judged.

Bearish twins (double bottom, inverse head and shoulders, downtrend lines,
bear flags) run the bullish rule on the mirrored series (prices negated,
swing highs and lows swapped): one rule, two directions, identical tolerances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

BREAK_MARGIN_ATR = 0.1
"""A confirming close must lie beyond the neckline / pattern line by more than
this many ATR (a close exactly on the line confirms nothing)."""

MAX_SPAN_BARS = 200
"""No detection spans more than this many bars from its first point to its
confirming bar: a pattern is a local shape, and the live caller's window
(`LOOKBACK_BARS`) must hold it whole."""


@dataclass(frozen=True, slots=True)
class Point:
    """A point of a detection: a swing, a touch, a line end or the break."""

    index: int  # position in the bars passed to `detect`
    time: datetime
    price: float
    role: str  # e.g. "peak", "neckline", "upper", "break"


@dataclass(frozen=True, slots=True)
class Detection:
    kind: str  # stable id, a key of PATTERN_KINDS
    label: str
    direction: str  # "bullish", "bearish" or "neutral"
    points: tuple[Point, ...]
    confirmed_index: int
    confirmed_at: datetime
    confidence: float  # in [0, 1], from how well the shape fits its rule
    explain: str  # one sentence, for a tooltip


@dataclass(frozen=True, slots=True)
class Swing:
    index: int  # the bar of the extreme
    price: float  # its high (kind "high") or low (kind "low")
    kind: str
    confirmed: int  # the bar whose close made it a swing (never earlier than index)


@dataclass(slots=True)
class Series:
    """The bars as float arrays plus what every detector needs. `sign` is -1
    for the mirrored series: `real()` turns its prices back."""

    ts: list[datetime]
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    atr: np.ndarray
    swings: list[Swing]
    sign: int = 1
    _mirror: Series | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ts)

    def real(self, price: float) -> float:
        return price * self.sign

    def point(self, index: int, price: float, role: str) -> Point:
        # Plain floats (not numpy's): callers serialize them.
        return Point(index, self.ts[index], round(float(self.real(price)), 10), role)

    def unit(self, index: int) -> float:
        """ATR at `index`, or NaN while ATR warms up (no pattern starts there)."""
        value = float(self.atr[index])
        return value if value > 0 else math.nan

    def mirror(self) -> Series:
        if self._mirror is None:
            flip = {"high": "low", "low": "high"}
            self._mirror = Series(
                ts=self.ts,
                high=-self.low,
                low=-self.high,
                close=-self.close,
                atr=self.atr,
                swings=[
                    Swing(s.index, -s.price, flip[s.kind], s.confirmed)
                    for s in self.swings
                ],
                sign=-self.sign,
            )
            self._mirror._mirror = self
        return self._mirror


def confidence(*ratios: float) -> float:
    """1.0 for a perfect fit, falling to 0.5 as each measured deviation
    reaches its tolerance (`ratios` are deviation / tolerance, each in [0, 1])."""
    if not ratios:
        return 1.0
    mean = sum(min(1.0, max(0.0, r)) for r in ratios) / len(ratios)
    return round(float(1.0 - 0.5 * mean), 3)


def line_at(i1: int, p1: float, i2: int, p2: float, i: float) -> float:
    """The price at bar `i` of the line through (i1, p1) and (i2, p2)."""
    return p1 + (p2 - p1) * (i - i1) / (i2 - i1)


def next_confirmed(series: Series, position: int) -> int:
    """The bar that confirms the swing after swings[position], or len(bars)
    when it is not confirmed yet: a pattern built on the last swings waits for
    its break until the shape moves on."""
    swings = series.swings
    return swings[position + 1].confirmed if position + 1 < len(swings) else len(series)


def fmt(price: float) -> str:
    """A price for an explanation: 2 decimals, more below 1."""
    if abs(price) >= 1:
        return f"{price:,.2f}"
    return f"{price:.6g}"
