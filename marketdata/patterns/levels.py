"""Support and resistance levels: swing prices that cluster.

When a swing is confirmed, the earliest swing (high or low) in the last
LEVEL_WINDOW_BARS bars within LEVEL_TOL_ATR × u of its price anchors a level,
where u is ATR(14) at that anchor; the touches are the swings from the anchor
on within that tolerance of the anchor's price. With LEVEL_MIN_TOUCHES or more
the level is confirmed at the bar that confirmed the newest touch, priced at
the touches' mean: support when that bar closes above it, resistance when it
closes below. A level is reported by the touch that brings it to exactly
LEVEL_MIN_TOUCHES (later touches of the same anchor do not repeat it); the
rule reads only the window's swings, so a live caller's shorter history
finds the same levels.
"""

from __future__ import annotations

from collections.abc import Iterator

from marketdata.patterns.base import Detection, Series, confidence, fmt

LEVEL_TOL_ATR = 0.5
"""Swing prices within this many ATR of the anchor's touch the same level."""
LEVEL_MIN_TOUCHES = 3
"""Touches (swing highs or lows) that make a level."""
LEVEL_WINDOW_BARS = 150
"""Only swings in the last this many bars count as touches."""

LABELS = {"support": "Support level", "resistance": "Resistance level"}


def levels(series: Series) -> Iterator[Detection]:
    swings = series.swings
    first = 0
    for j, s in enumerate(swings):
        while swings[first].index < s.index - LEVEL_WINDOW_BARS:
            first += 1
        # The anchor: the earliest swing in the window that s touches.
        for e in range(first, j):
            anchor = swings[e]
            tol = LEVEL_TOL_ATR * series.unit(anchor.index)
            if abs(s.price - anchor.price) <= tol:  # False while ATR is NaN
                break
        else:
            continue
        touches = [t for t in swings[e : j + 1] if abs(t.price - anchor.price) <= tol]
        # Exactly the minimum: s completes the level (later touches repeat it).
        if len(touches) != LEVEL_MIN_TOUCHES:
            continue
        at = s.confirmed
        price = sum(t.price for t in touches) / len(touches)
        kind = "support" if series.close[at] > price else "resistance"
        spread = max(abs(t.price - anchor.price) for t in touches)
        yield Detection(
            kind=kind,
            label=LABELS[kind],
            direction="bullish" if kind == "support" else "bearish",
            points=(
                *(series.point(t.index, t.price, "touch") for t in touches),
                series.point(touches[0].index, price, "level"),
                series.point(at, price, "level"),
            ),
            confirmed_index=at,
            confirmed_at=series.ts[at],
            confidence=confidence(spread / tol),
            explain=(
                f"{LABELS[kind]} at {fmt(price)}: {len(touches)} swing "
                f"{'lows and highs' if len({t.kind for t in touches}) > 1 else s.kind + 's'}"
                f" within {LEVEL_TOL_ATR:g} ATR of it since "
                f"{series.ts[touches[0].index]:%Y-%m-%d %H:%M} UTC."
            ),
        )
