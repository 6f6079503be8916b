"""The candlestick pattern rules, bar for bar what TA-Lib's `CDL*` functions
return (the public side, with labels and events, is `marketdata.candles`).

Each pattern function takes open, high, low and close arrays and returns an
int32 array as long as them: 100 (bullish, or "present" for a doji), -100
(bearish), ±80 where TA-Lib marks a partial match (engulfing and harami whose
real bodies share an end), and 0 elsewhere, including the first `lookback`
bars that TA-Lib leaves at 0.

TA-Lib does not compare a candle with fixed sizes but with the average of the
candles before it ("candle settings"): a body is *long* when it is longer
than the mean real body of the 10 previous candles, *near* means within 20%
of the mean high-low range of the 5 previous candles, and so on
(`SETTINGS`). Those means come from running totals that TA-Lib keeps in a
particular order: the first window is summed left to right at the first
evaluated bar, then each bar adds (entering range - leaving range). The
totals here are built the same way (`_Candles.average`), so a comparison that
lands on a tie rounds as TA-Lib's does and the outputs are equal, not close.
TA-Lib is only the test oracle: nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

REAL_BODY, HIGH_LOW, SHADOWS = "real_body", "high_low", "shadows"


@dataclass(frozen=True)
class CandleSetting:
    """What "long", "short", "near"... mean: `factor` times the mean of
    `range_type` over the `period` candles before the one measured (its own
    range when `period` is 0); a Shadows mean is halved (per shadow)."""

    range_type: str
    period: int
    factor: float


# TA-Lib's defaults (TA_RestoreCandleDefaultSettings).
SETTINGS: dict[str, CandleSetting] = {
    "BodyLong": CandleSetting(REAL_BODY, 10, 1.0),
    "BodyVeryLong": CandleSetting(REAL_BODY, 10, 3.0),
    "BodyShort": CandleSetting(REAL_BODY, 10, 1.0),
    "BodyDoji": CandleSetting(HIGH_LOW, 10, 0.1),
    "ShadowLong": CandleSetting(REAL_BODY, 0, 1.0),
    "ShadowVeryLong": CandleSetting(REAL_BODY, 0, 2.0),
    "ShadowShort": CandleSetting(SHADOWS, 10, 1.0),
    "ShadowVeryShort": CandleSetting(HIGH_LOW, 10, 0.1),
    "Near": CandleSetting(HIGH_LOW, 5, 0.2),
    "Far": CandleSetting(HIGH_LOW, 5, 0.6),
    "Equal": CandleSetting(HIGH_LOW, 5, 0.05),
}


def _period(*names: str) -> int:
    return max(SETTINGS[name].period for name in names)


class Candles:
    """Per-bar measures of one series, and the candle-setting averages seen
    from the bars `start`..N-1 that a pattern evaluates (set by `evaluate`).
    Building it checks the inputs (ValueError for a bad one)."""

    def __init__(self, opens, highs, lows, closes) -> None:
        o, h, lo, c = _inputs(opens, highs, lows, closes)
        self.o, self.h, self.l, self.c = o, h, lo, c
        self.n = c.size
        self.start = 0
        # TA-Lib's colour: white (1) when close >= open, else black (-1).
        self.white = white = c >= o
        self.black = ~white
        self.top = np.maximum(o, c)
        self.bottom = np.minimum(o, c)
        self.body = np.abs(c - o)
        self.upper = h - self.top
        self.lower = self.bottom - lo
        self._ranges = {
            REAL_BODY: self.body,
            HIGH_LOW: h - lo,
            SHADOWS: self.upper + self.lower,
        }
        self._totals: dict[tuple[str, int], np.ndarray] = {}

    def at(self, values: np.ndarray, back: int) -> np.ndarray:
        """`values[i - back]` for each evaluated bar i."""
        return values[self.start - back : self.n - back]

    def average(self, name: str, back: int = 0) -> np.ndarray:
        """TA_CANDLEAVERAGE of setting `name` for candle i - `back`, for
        each evaluated bar i, with TA-Lib's running-total arithmetic."""
        setting = SETTINGS[name]
        ranges = self._ranges[setting.range_type]
        divisor = 2.0 if setting.range_type == SHADOWS else 1.0
        if setting.period == 0:
            return setting.factor * self.at(ranges, back) / divisor
        # The running total depends only on the candle it starts at, so
        # patterns that start at the same candle share it.
        first = self.start - back
        averages = self._totals.get((name, first))
        if averages is None:
            averages = self._totals[(name, first)] = self._running(setting, first)
        return averages[: self.n - self.start]

    def _running(self, setting: CandleSetting, first: int) -> np.ndarray:
        """TA_CANDLEAVERAGE for candles first..N-1: the first window summed
        left to right, then each candle adds (entering - leaving) to the
        total, as TA-Lib does."""
        ranges = self._ranges[setting.range_type]
        p = setting.period
        total = 0.0
        for value in ranges[first - p : first].tolist():
            total += value
        out = np.empty(self.n - first)
        out[0] = total
        np.subtract(
            ranges[first : self.n - 1], ranges[first - p : self.n - 1 - p], out=out[1:]
        )
        np.cumsum(out, out=out)
        # factor * (total / period) / divisor, in TA-Lib's order.
        out /= p
        if setting.factor != 1.0:
            out *= setting.factor
        if setting.range_type == SHADOWS:
            out /= 2.0
        return out


def _inputs(*arrays) -> tuple[np.ndarray, ...]:
    out = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    if any(a.ndim != 1 for a in out):
        raise ValueError("candle inputs must be one-dimensional")
    if len({a.size for a in out}) != 1:
        raise ValueError("open, high, low and close must have the same length")
    if not all(np.isfinite(a).all() for a in out):
        raise ValueError("candle inputs must be finite numbers (no NaN or inf)")
    return out


def _signal(condition: np.ndarray, value) -> np.ndarray:
    out = condition.astype(np.int32)
    out *= value
    return out


Rule = Callable[[Candles], np.ndarray]
# pattern id -> (TA-Lib lookback, rule over the bars lookback..N-1)
RULES: dict[str, tuple[int, Rule]] = {}


def _rule(name: str, lookback: int) -> Callable[[Rule], Rule]:
    def register(rule: Rule) -> Rule:
        RULES[name] = (lookback, rule)
        return rule

    return register


def evaluate(candles: Candles, name: str) -> np.ndarray:
    """Pattern `name` over every bar of `candles` (0 during its lookback)."""
    lookback, rule = RULES[name]
    out = np.zeros(candles.n, dtype=np.int32)
    if candles.n > lookback:
        candles.start = lookback
        out[lookback:] = rule(candles)
    return out


# --- one-candle patterns -------------------------------------------------------


@_rule("doji", _period("BodyDoji"))
def _doji(k: Candles) -> np.ndarray:
    """CDLDOJI: real body no longer than 10% of the average high-low range."""
    return _signal(k.at(k.body, 0) <= k.average("BodyDoji"), 100)


def _small_body_long_lower(k: Candles) -> np.ndarray:
    return (
        (k.at(k.body, 0) < k.average("BodyShort"))
        & (k.at(k.lower, 0) > k.average("ShadowLong"))
        & (k.at(k.upper, 0) < k.average("ShadowVeryShort"))
    )


_HAMMER_LOOKBACK = _period("BodyShort", "ShadowLong", "ShadowVeryShort", "Near") + 1


@_rule("hammer", _HAMMER_LOOKBACK)
def _hammer(k: Candles) -> np.ndarray:
    """CDLHAMMER: small body, long lower shadow, (almost) no upper shadow,
    body at or near the previous candle's low."""
    near_low = k.at(k.bottom, 0) <= k.at(k.l, 1) + k.average("Near", 1)
    return _signal(_small_body_long_lower(k) & near_low, 100)


@_rule("hanging_man", _HAMMER_LOOKBACK)
def _hanging_man(k: Candles) -> np.ndarray:
    """CDLHANGINGMAN: the hammer's shape with its body at or near the
    previous candle's high."""
    near_high = k.at(k.bottom, 0) >= k.at(k.h, 1) - k.average("Near", 1)
    return _signal(_small_body_long_lower(k) & near_high, -100)


@_rule("shooting_star", _period("BodyShort", "ShadowLong", "ShadowVeryShort") + 1)
def _shooting_star(k: Candles) -> np.ndarray:
    """CDLSHOOTINGSTAR: small body, long upper shadow, (almost) no lower
    shadow, body gapping up from the previous body."""
    shape = (
        (k.at(k.body, 0) < k.average("BodyShort"))
        & (k.at(k.upper, 0) > k.average("ShadowLong"))
        & (k.at(k.lower, 0) < k.average("ShadowVeryShort"))
        & (k.at(k.bottom, 0) > k.at(k.top, 1))
    )
    return _signal(shape, -100)


# --- two-candle patterns -------------------------------------------------------


@_rule("engulfing", 2)
def _engulfing(k: Candles) -> np.ndarray:
    """CDLENGULFING: a body that engulfs the previous opposite-colour body;
    ±80 when the two bodies share an end."""
    o0, c0, o1, c1 = k.at(k.o, 0), k.at(k.c, 0), k.at(k.o, 1), k.at(k.c, 1)
    white, black = k.at(k.white, 0), k.at(k.black, 0)
    bullish = (
        white & k.at(k.black, 1) & (((c0 >= o1) & (o0 < c1)) | ((c0 > o1) & (o0 <= c1)))
    )
    bearish = (
        black & k.at(k.white, 1) & (((o0 >= c1) & (c0 < o1)) | ((o0 > c1) & (c0 <= o1)))
    )
    strength = np.where((o0 != c1) & (c0 != o1), 100, 80)
    strength[black] *= -1
    return _signal(bullish | bearish, strength)


@_rule("harami", _period("BodyShort", "BodyLong") + 1)
def _harami(k: Candles) -> np.ndarray:
    """CDLHARAMI: a long body, then a short body inside it (±80 when they
    share an end); the sign is opposite to the first candle's colour."""
    setup = (k.at(k.body, 1) > k.average("BodyLong", 1)) & (
        k.at(k.body, 0) <= k.average("BodyShort")
    )
    top0, top1 = k.at(k.top, 0), k.at(k.top, 1)
    bottom0, bottom1 = k.at(k.bottom, 0), k.at(k.bottom, 1)
    sign = np.where(k.at(k.white, 1), -1, 1)
    inside = (top0 < top1) & (bottom0 > bottom1)
    touching = (top0 <= top1) & (bottom0 >= bottom1)
    value = np.where(inside, sign * 100, np.where(touching, sign * 80, 0))
    return _signal(setup, value)


@_rule("piercing", _period("BodyLong") + 1)
def _piercing(k: Candles) -> np.ndarray:
    """CDLPIERCING: a long black candle, then a long white one opening under
    its low and closing above its midpoint but below its open."""
    c0, c1 = k.at(k.c, 0), k.at(k.c, 1)
    shape = (
        k.at(k.black, 1)
        & (k.at(k.body, 1) > k.average("BodyLong", 1))
        & k.at(k.white, 0)
        & (k.at(k.body, 0) > k.average("BodyLong"))
        & (k.at(k.o, 0) < k.at(k.l, 1))
        & (c0 < k.at(k.o, 1))
        & (c0 > c1 + k.at(k.body, 1) * 0.5)
    )
    return _signal(shape, 100)


DARK_CLOUD_PENETRATION = 0.5


@_rule("dark_cloud_cover", _period("BodyLong") + 1)
def _dark_cloud_cover(k: Candles) -> np.ndarray:
    """CDLDARKCLOUDCOVER (penetration 0.5): a long white candle, then a black
    one opening above its high and closing past the middle of its body."""
    c0, c1 = k.at(k.c, 0), k.at(k.c, 1)
    shape = (
        k.at(k.white, 1)
        & (k.at(k.body, 1) > k.average("BodyLong", 1))
        & k.at(k.black, 0)
        & (k.at(k.o, 0) > k.at(k.h, 1))
        & (c0 > k.at(k.o, 1))
        & (c0 < c1 - k.at(k.body, 1) * DARK_CLOUD_PENETRATION)
    )
    return _signal(shape, -100)


# --- three-candle patterns -----------------------------------------------------

STAR_PENETRATION = 0.3
_STAR_LOOKBACK = _period("BodyShort", "BodyLong") + 2


def _star(k: Candles, color: int) -> np.ndarray:
    """Morning (color 1) or evening (color -1) star."""
    body2 = k.at(k.body, 2)
    if color == 1:  # the star's body gaps down from the first body
        gap = k.at(k.top, 1) < k.at(k.bottom, 2)
        closes_into = k.at(k.c, 0) > k.at(k.c, 2) + body2 * STAR_PENETRATION
    else:
        gap = k.at(k.bottom, 1) > k.at(k.top, 2)
        closes_into = k.at(k.c, 0) < k.at(k.c, 2) - body2 * STAR_PENETRATION
    return (
        (body2 > k.average("BodyLong", 2))
        & k.at(k.black if color == 1 else k.white, 2)
        & (k.at(k.body, 1) <= k.average("BodyShort", 1))
        & gap
        & (k.at(k.body, 0) > k.average("BodyShort"))
        & k.at(k.white if color == 1 else k.black, 0)
        & closes_into
    )


@_rule("morning_star", _STAR_LOOKBACK)
def _morning_star(k: Candles) -> np.ndarray:
    """CDLMORNINGSTAR (penetration 0.3): long black, a short body gapping
    down, then a white candle closing 30% or more into the first body."""
    return _signal(_star(k, 1), 100)


@_rule("evening_star", _STAR_LOOKBACK)
def _evening_star(k: Candles) -> np.ndarray:
    """CDLEVENINGSTAR (penetration 0.3): long white, a short body gapping
    up, then a black candle closing 30% or more into the first body."""
    return _signal(_star(k, -1), -100)


@_rule(
    "three_white_soldiers",
    _period("ShadowVeryShort", "BodyShort", "Far", "Near") + 2,
)
def _three_white_soldiers(k: Candles) -> np.ndarray:
    """CDL3WHITESOLDIERS: three white candles with very short upper shadows,
    each closing higher and opening within or near the previous body, none
    far shorter than the one before, the last not short."""
    o, c, body = k.o, k.c, k.body
    shape = k.at(body, 0) > k.average("BodyShort")
    for back in (2, 1, 0):
        shape &= k.at(k.white, back) & (
            k.at(k.upper, back) < k.average("ShadowVeryShort", back)
        )
    for back in (2, 1):
        later = back - 1
        shape &= (
            (k.at(c, later) > k.at(c, back))
            & (k.at(o, later) > k.at(o, back))
            & (k.at(o, later) <= k.at(c, back) + k.average("Near", back))
            & (k.at(body, later) > k.at(body, back) - k.average("Far", back))
        )
    return _signal(shape, 100)


@_rule("three_black_crows", _period("ShadowVeryShort") + 3)
def _three_black_crows(k: Candles) -> np.ndarray:
    """CDL3BLACKCROWS: after a white candle, three black candles with very
    short lower shadows, each opening inside the previous body and closing
    lower, the first closing under the white candle's high."""
    o, c = k.o, k.c
    shape = k.at(k.white, 3) & (k.at(k.h, 3) > k.at(c, 2))
    for back in (2, 1, 0):
        shape &= k.at(k.black, back) & (
            k.at(k.lower, back) < k.average("ShadowVeryShort", back)
        )
    for back in (2, 1):
        later = back - 1
        shape &= (
            (k.at(o, later) < k.at(o, back))
            & (k.at(o, later) > k.at(c, back))
            & (k.at(c, back) > k.at(c, later))
        )
    return _signal(shape, -100)
