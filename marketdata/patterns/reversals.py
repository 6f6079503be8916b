"""Reversals: double top / bottom and head and shoulders / inverse.

Both are read off consecutive zigzag swings; `u` is ATR(14) at the first
swing of the shape. The shape is complete when its last swing is confirmed;
the pattern is CONFIRMED by the first close beyond the neckline by more than
BREAK_MARGIN_ATR × u, looked for from the bar that confirmed the last swing
until the next swing is confirmed (or BREAK_WAIT_BARS bars), and abandoned if
a close goes back above the highest peak first. The bottoms are the same
rules on the mirrored series.
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

DOUBLE_TOL_ATR = 0.5
"""Double top: the two peaks differ by at most this many ATR."""
DOUBLE_MIN_DEPTH_ATR = 2.0
"""Double top: the trough between the peaks lies at least this many ATR below
the lower peak."""
DOUBLE_MIN_BARS = 5
"""Double top: at least this many bars from the first peak to the second."""
BREAK_WAIT_BARS = 40
"""Bars after the shape is complete within which the neckline must break."""
HS_HEAD_MIN_ATR = 1.0
"""Head and shoulders: the head rises at least this many ATR above the higher
shoulder."""
HS_SHOULDER_TOL_ATR = 1.0
"""Head and shoulders: the shoulders differ by at most this many ATR."""
HS_NECK_TOL_ATR = 1.5
"""Head and shoulders: the two neckline troughs differ by at most this many
ATR (a neckline may slope, not plunge)."""
HS_TIME_RATIO = 2.5
"""Head and shoulders: neither side (shoulder to head, in bars) is more than
this many times as long as the other."""

LABELS = {
    "double_top": "Double top",
    "double_bottom": "Double bottom",
    "head_and_shoulders": "Head and shoulders",
    "inverse_head_and_shoulders": "Inverse head and shoulders",
}


def _break(
    series: Series, *, start: int, stop: int, neck, margin: float, ceiling: float
) -> int | None:
    """The first bar in [start, stop) closing below neck(i) - margin, unless a
    close above `ceiling` comes first."""
    close = series.close
    for i in range(start, min(stop, start + BREAK_WAIT_BARS, len(series))):
        if close[i] > ceiling:
            return None
        if close[i] < neck(i) - margin:
            return i
    return None


def double_tops(series: Series) -> Iterator[Detection]:
    """Double tops on `series`; double bottoms on its mirror."""
    top = series.sign == 1
    kind = "double_top" if top else "double_bottom"
    swings = series.swings
    for j in range(2, len(swings)):
        p1, trough, p2 = swings[j - 2], swings[j - 1], swings[j]
        if p2.kind != "high":
            continue
        u = series.unit(p1.index)
        if not u == u or not DOUBLE_MIN_BARS <= p2.index - p1.index:
            continue
        gap = abs(p1.price - p2.price)
        depth = min(p1.price, p2.price) - trough.price
        if gap > DOUBLE_TOL_ATR * u or depth < DOUBLE_MIN_DEPTH_ATR * u:
            continue
        neck = trough.price
        at = _break(
            series,
            start=p2.confirmed,
            stop=next_confirmed(series, j),
            neck=lambda i, neck=neck: neck,
            margin=BREAK_MARGIN_ATR * u,
            ceiling=max(p1.price, p2.price),
        )
        if at is None or at - p1.index > MAX_SPAN_BARS:
            continue
        word = ("peaks", "below") if top else ("troughs", "above")
        outer, inner = ("peak", "trough") if top else ("trough", "peak")
        yield Detection(
            kind=kind,
            label=LABELS[kind],
            direction="bearish" if top else "bullish",
            points=(
                series.point(p1.index, p1.price, outer),
                series.point(trough.index, trough.price, inner),
                series.point(p2.index, p2.price, outer),
                series.point(trough.index, neck, "neckline"),
                series.point(at, neck, "neckline"),
                series.point(at, float(series.close[at]), "break"),
            ),
            confirmed_index=at,
            confirmed_at=series.ts[at],
            confidence=confidence(gap / (DOUBLE_TOL_ATR * u)),
            explain=(
                f"{LABELS[kind]}: two {word[0]} at {fmt(series.real(p1.price))} and "
                f"{fmt(series.real(p2.price))} ({gap / u:.2f} ATR apart), then a close "
                f"at {fmt(series.real(series.close[at]))} {word[1]} the "
                f"{fmt(series.real(neck))} neckline."
            ),
        )


def head_and_shoulders(series: Series) -> Iterator[Detection]:
    """Head and shoulders on `series`; the inverse on its mirror."""
    top = series.sign == 1
    kind = "head_and_shoulders" if top else "inverse_head_and_shoulders"
    swings = series.swings
    for j in range(4, len(swings)):
        left, t1, head, t2, right = swings[j - 4 : j + 1]
        if right.kind != "high":
            continue
        u = series.unit(left.index)
        if not u == u or right.index - left.index > MAX_SPAN_BARS:
            continue
        shoulders = abs(left.price - right.price)
        neck_gap = abs(t1.price - t2.price)
        if (
            head.price - max(left.price, right.price) < HS_HEAD_MIN_ATR * u
            or shoulders > HS_SHOULDER_TOL_ATR * u
            or neck_gap > HS_NECK_TOL_ATR * u
        ):
            continue
        before, after = head.index - left.index, right.index - head.index
        if max(before, after) > HS_TIME_RATIO * min(before, after):
            continue

        def neck(i, t1=t1, t2=t2):
            return line_at(t1.index, t1.price, t2.index, t2.price, i)

        at = _break(
            series,
            start=right.confirmed,
            stop=next_confirmed(series, j),
            neck=neck,
            margin=BREAK_MARGIN_ATR * u,
            ceiling=head.price,
        )
        if at is None or at - left.index > MAX_SPAN_BARS:
            continue
        word = "below" if top else "above"
        yield Detection(
            kind=kind,
            label=LABELS[kind],
            direction="bearish" if top else "bullish",
            points=(
                series.point(left.index, left.price, "left_shoulder"),
                series.point(head.index, head.price, "head"),
                series.point(right.index, right.price, "right_shoulder"),
                series.point(t1.index, t1.price, "neckline"),
                series.point(t2.index, t2.price, "neckline"),
                series.point(at, neck(at), "neckline"),
                series.point(at, float(series.close[at]), "break"),
            ),
            confirmed_index=at,
            confirmed_at=series.ts[at],
            confidence=confidence(
                shoulders / (HS_SHOULDER_TOL_ATR * u), neck_gap / (HS_NECK_TOL_ATR * u)
            ),
            explain=(
                f"{LABELS[kind]}: head at {fmt(series.real(head.price))} between "
                f"shoulders at {fmt(series.real(left.price))} and "
                f"{fmt(series.real(right.price))}, then a close at "
                f"{fmt(series.real(series.close[at]))} {word} the neckline "
                f"({fmt(series.real(neck(at)))})."
            ),
        )
