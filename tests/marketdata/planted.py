"""Synthetic bars with chart patterns planted in them (tests and e2e).

A path is a list of (bar, close) waypoints joined by straight lines; each bar
opens at the previous close and its wicks reach WICK beyond its body, so the
swing highs and lows sit exactly at waypoint + / - WICK and ATR stays near
1 to 2. `mirror` turns a path upside down (200 - price): a double top becomes
a double bottom, a bull flag a bear flag.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

WICK = 0.25
T0 = datetime(2026, 1, 5, tzinfo=UTC)

# name -> (waypoints, the kind planted, its confirming bar, its points' bars)
PLANTED = {
    "double_top": (
        [(0, 100), (20, 90), (40, 110), (55, 102), (70, 110), (90, 95)],
        82,  # 110 - 0.75 k first closes below the 101.75 neckline - 0.1 ATR
        (40, 55, 70),
    ),
    "head_and_shoulders": (
        [
            (0, 100),
            (20, 90),
            (40, 106),
            (52, 100),
            (66, 112),
            (80, 100),
            (94, 106),
            (115, 92),
        ],
        104,  # 106 - 14/21 k below the flat 99.75 neckline - 0.1 ATR at k = 10
        (40, 66, 94),
    ),
    "ascending_triangle": (
        [(0, 100), (20, 92), (35, 110), (50, 96), (65, 110), (80, 100), (100, 118)],
        92,  # 100 + 0.9 k above the flat 110.25 top + 0.1 ATR at k = 12
        (20, 35, 50, 65, 80),
    ),
    "symmetrical_triangle": (
        [(0, 100), (20, 90), (35, 112), (50, 94), (65, 108), (80, 98), (100, 115)],
        89,  # 98 + 0.85 k above the falling 106.25 - k / 7.5 line at k = 9
        (20, 35, 50, 65, 80),
    ),
    "bull_flag": (
        [(0, 100), (25, 95), (35, 105), (45, 102), (46, 106), (50, 107)],
        46,  # the jump out of the 10-bar down-sloping channel
        (25, 35),
    ),
    "bull_pennant": (
        [
            (0, 100),
            (25, 95),
            (35, 105),
            (36, 102.8),
            (37, 104.3),
            (38, 103.0),
            (39, 104.0),
            (40, 103.3),
            (41, 103.8),
            (42, 103.45),
            (43, 103.65),
            (44, 106),
            (48, 107),
        ],  # fmt: skip
        44,
        (25, 35),
    ),
    "support": (
        [(0, 110), (15, 90), (30, 110), (45, 90), (60, 108), (75, 90), (95, 105)],
        79,  # the bar confirming the third swing low at 89.75
        (15, 45, 75),
    ),
    "trendline_up": (
        [
            (0, 100),
            (20, 90),
            (35, 106),
            (50, 94),
            (65, 110),
            (80, 98),
            (95, 112),
            (110, 92),
        ],
        83,  # the bar confirming the third rising low (97.75 at bar 80)
        (20, 50, 80),
    ),
}
# The bearish twin of each planted kind, found on the mirrored path.
MIRRORED = {
    "double_top": "double_bottom",
    "head_and_shoulders": "inverse_head_and_shoulders",
    "ascending_triangle": "descending_triangle",
    "symmetrical_triangle": "symmetrical_triangle",
    "bull_flag": "bear_flag",
    "bull_pennant": "bear_pennant",
    "support": "resistance",
    "trendline_up": "trendline_down",
}


def mirror(waypoints):
    return [(i, 200 - p) for i, p in waypoints]


def bars_of(
    waypoints, *, start: datetime = T0, step=timedelta(minutes=1)
) -> list[dict]:
    xs, ys = zip(*waypoints, strict=True)
    closes = np.interp(np.arange(xs[-1] + 1), xs, ys)
    bars = []
    for i, close in enumerate(closes.tolist()):
        open_ = closes[i - 1] if i else close
        bars.append(
            {
                "ts": start + i * step,
                "open": float(open_),
                "high": max(open_, close) + WICK,
                "low": min(open_, close) - WICK,
                "close": close,
                "volume": 100.0,
            }
        )
    return bars
