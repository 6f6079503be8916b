"""The sweep: stored minutes compared with the calendar, holes sent to the ledger.

Whatever made a hole (a bug, a lost message, a fault nobody foresaw), the
sweep finds it: for each instrument, the minutes the calendar expects in
[start, end) (extended hours where the provider serves them) minus the
minutes stored. Each run of consecutive missing minutes is reported to the
gap ledger, which ignores ranges it already knows (being repaired, or
checked with the provider after they were over: minutes it has no bar for
stay absent) and enqueues the rest. Runs inside known ranges are skipped
here already, so a sweep over illiquid pre- and post-market minutes costs
one query per instrument once they have been checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from core.minutes import MINUTE
from marketdata import calendar
from marketdata.models import Bar, GapState, Instrument, Timeframe

MERGE_WITHIN = timedelta(minutes=30)


def minutes_missing(
    *,
    instrument_id: int,
    asset_class: str,
    start: datetime,
    end: datetime,
    extended: bool = False,
) -> list[tuple[datetime, datetime]]:
    """Runs [lo, hi) of expected minutes with no stored 1-minute bar."""
    expected = list(
        calendar.expected_minutes(asset_class, start, end, extended=extended)
    )
    if not expected:
        return []
    stored = set(
        Bar.objects.filter(
            instrument_id=instrument_id,
            timeframe=Timeframe.MINUTE,
            ts__gte=expected[0],
            ts__lt=end,
        ).values_list("ts", flat=True)
    )
    runs: list[tuple[datetime, datetime]] = []
    for minute in expected:
        if minute in stored:
            continue
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + MINUTE)
        else:
            runs.append((minute, minute + MINUTE))
    return runs


def gaps_sweep(
    *,
    instruments: Iterable[tuple[int, str, bool]],
    start: datetime,
    end: datetime,
) -> int:
    """Report every hole of `instruments` ((id, asset class, extended hours))
    in [start, end) to the gap ledger; returns how many were queued for repair
    (holes the ledger already knows, being repaired or found empty at the
    provider, are not). Holes less than `MERGE_WITHIN` apart are reported as
    one range: one history request instead of one per quiet minute of an
    illiquid pre- or post-market (stored minutes inside it are left as they
    are, the backfill never overwrites)."""
    from marketdata.gaps import gap_report, gaps_known

    wanted = list(instruments)
    rows = Instrument.objects.in_bulk([i for i, _, _ in wanted])
    reported = 0
    for instrument_id, asset_class, extended in wanted:
        instrument = rows.get(instrument_id)
        if instrument is None:
            continue
        known = gaps_known(instrument_id=instrument_id, start=start, end=end)
        holes: list[tuple[datetime, datetime]] = []
        for lo, hi in minutes_missing(
            instrument_id=instrument_id,
            asset_class=asset_class,
            start=start,
            end=end,
            extended=extended,
        ):
            if any(k_lo <= lo and hi <= k_hi for k_lo, k_hi in known):
                continue
            if holes and lo - holes[-1][1] < MERGE_WITHIN:
                holes[-1] = (holes[-1][0], hi)
            else:
                holes.append((lo, hi))
        for lo, hi in holes:
            gap = gap_report(instrument=instrument, start=lo, end=hi, source="sweep")
            if gap.state == GapState.OPEN:  # not known before: a repair is queued
                reported += 1
    return reported
