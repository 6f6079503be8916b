"""Checking provider bars before they are stored: a bar that cannot be right
is dropped, counted and kept as an example, never written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from marketdata.events import BarEvent
from marketdata.models import Timeframe

INVALID_EXAMPLES = 5
MAX_PRICE = Decimal("999999999999.99999999")  # numeric(20, 8)


def bar_problem(bar: BarEvent, *, start: datetime, end: datetime) -> str | None:
    """Why `bar` must not be stored, or None when it is sound."""
    if not (start <= bar.ts < end):
        return "timestamp outside the request"
    o, h, low, c = bar.open, bar.high, bar.low, bar.close
    if o <= 0 or h <= 0 or low <= 0 or c <= 0:
        return "non-positive price"
    if h > MAX_PRICE:
        return "price out of range"
    if h < o or h < c:
        return "high below open/close"
    if low > o or low > c:
        return "low above open/close"
    if bar.volume < 0:
        return "negative volume"
    if bar.timeframe == "1m" and (bar.ts.second or bar.ts.microsecond):
        return "timestamp not on a minute boundary"
    return None


@dataclass
class PageResult:
    rows: list[tuple]
    invalid: int = 0
    examples: list[dict] = field(default_factory=list)


def validate_page(
    bars: Iterable[BarEvent],
    *,
    instrument_id: int,
    timeframe: str,
    start: datetime,
    end: datetime,
) -> PageResult:
    result = PageResult(rows=[])
    append = result.rows.append
    minutes = timeframe == Timeframe.MINUTE
    for bar in bars:
        ts, o, h, low, c = bar.ts, bar.open, bar.high, bar.low, bar.close
        # Fast path for sound bars (the same rules as `bar_problem`, inlined:
        # low > 0 with low <= open/close <= high covers every price).
        if (
            start <= ts < end
            and low > 0
            and low <= o <= h
            and low <= c <= h
            and bar.volume >= 0
            and h <= MAX_PRICE
            and (not minutes or not (ts.second or ts.microsecond))
        ):
            append(
                (
                    instrument_id,
                    timeframe,
                    ts,
                    o,
                    h,
                    low,
                    c,
                    bar.volume,
                    bar.vwap,
                    bar.trade_count,
                )
            )
            continue
        # Same rules as the fast path, so this always names the problem.
        problem = bar_problem(bar, start=start, end=end) or "invalid bar"
        result.invalid += 1
        if len(result.examples) < INVALID_EXAMPLES:
            result.examples.append(
                {
                    "ts": bar.ts.isoformat(),
                    "problem": problem,
                    "ohlcv": [
                        str(bar.open),
                        str(bar.high),
                        str(bar.low),
                        str(bar.close),
                        str(bar.volume),
                    ],
                }
            )
    return result
