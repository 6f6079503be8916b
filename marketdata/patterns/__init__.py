"""Chart patterns, exact and explainable (issue 14).

    from marketdata.patterns import detect, PATTERN_KINDS, LOOKBACK_BARS
    detections = detect(bars)                      # every kind
    detect(bars, kinds={"double_top", "bull_flag"})

`bars`: a sequence of objects or dicts with `ts` (aware datetime), `open`,
`high`, `low`, `close`, `volume` (floats or Decimals), oldest first.

How it works: ATR(14) (`marketdata.indicators.atr`) sets the scale; a zigzag
(`swings`) turns the bars into alternating swing highs and lows, each known
from the bar that confirmed it; each pattern is a geometric rule over the
swings (or, for flags, the bars) with tolerances in ATR multiples, documented
as module constants in `levels`, `lines`, `reversals`, `triangles` and
`flags`. Every detection is confirmed by one bar (usually a close beyond a
line) and is computed only from the bars up to and including that bar:
`detect(bars[: k + 1])` finds exactly the detections of `detect(bars)` whose
`confirmed_index` is at most k.

A live caller (the alert engine) passes at least the last LOOKBACK_BARS bars
and takes the detections with `confirmed_index == len(bars) - 1`: those that
the bar which just closed confirmed. The zigzag and ATR start where the bars
start, so a window shorter than the chart's history can, rarely, place a
swing differently in its first bars; LOOKBACK_BARS leaves room for that
before any pattern (at most MAX_SPAN_BARS long) begins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import attrgetter, itemgetter

import numpy as np

from marketdata.indicators import atr
from marketdata.patterns import flags, levels, lines, reversals, triangles
from marketdata.patterns.base import MAX_SPAN_BARS, Detection, Point, Series
from marketdata.patterns.swings import ATR_PERIOD, zigzag

__all__ = ["LOOKBACK_BARS", "PATTERN_KINDS", "Detection", "Point", "detect"]

PATTERN_KINDS: dict[str, str] = {
    **levels.LABELS,
    **lines.LABELS,
    **reversals.LABELS,
    **triangles.LABELS,
    **flags.LABELS,
}

LOOKBACK_BARS: int = MAX_SPAN_BARS + 100
"""Bars a live caller passes: the longest pattern (MAX_SPAN_BARS) plus room
for ATR to warm up and the zigzag to settle before it."""

# Each detector, the kinds it yields, and whether it runs on the mirrored
# series too (the bearish twin of a one-sided rule).
_DETECTORS: tuple[
    tuple[Callable[[Series], Iterator[Detection]], frozenset, bool], ...
] = (
    (levels.levels, frozenset(levels.LABELS), False),
    (lines.trend_lines, frozenset(lines.LABELS), True),
    (reversals.double_tops, frozenset({"double_top", "double_bottom"}), True),
    (
        reversals.head_and_shoulders,
        frozenset({"head_and_shoulders", "inverse_head_and_shoulders"}),
        True,
    ),
    (triangles.triangles, frozenset(triangles.LABELS), False),
    (flags.flags, frozenset(flags.LABELS), True),
)


def series_of(bars: Sequence) -> Series:
    """The arrays, ATR and swings of `bars` (see the module doc)."""
    get = itemgetter if bars and isinstance(bars[0], Mapping) else attrgetter
    ts: list[datetime] = list(map(get("ts"), bars))
    high, low, close = (
        np.fromiter(map(float, map(get(name), bars)), dtype=np.float64, count=len(bars))
        for name in ("high", "low", "close")
    )
    unit = atr(high, low, close, ATR_PERIOD)
    return Series(ts, high, low, close, unit, zigzag(high, low, unit))


def detect(bars: Sequence, *, kinds: Iterable[str] | None = None) -> list[Detection]:
    """Every detection of `kinds` (default: all of PATTERN_KINDS) in `bars`,
    ordered by confirming bar, then kind. Unknown kinds are a ValueError."""
    wanted = set(PATTERN_KINDS) if kinds is None else set(kinds)
    unknown = wanted - set(PATTERN_KINDS)
    if unknown:
        raise ValueError(
            f"unknown pattern kind(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join(PATTERN_KINDS)}"
        )
    if len(bars) <= ATR_PERIOD + 1 or not wanted:
        return []
    series = series_of(bars)
    found: list[Detection] = []
    for detector, produces, mirrored in _DETECTORS:
        if not produces & wanted:
            continue
        for side in (series, series.mirror()) if mirrored else (series,):
            found.extend(d for d in detector(side) if d.kind in wanted)
    found.sort(key=lambda d: (d.confirmed_index, d.kind, d.points[0].index))
    return found
