"""Coverage by minutes: is every bar the calendar expects in a range stored?

A range is complete only when the SET of expected bars is a subset of the
stored set, never when a count reaches a number: a month with ten days
missing still holds more minutes than the regular session has when the
stored ones include pre-/post-market or 24-hour data (a CSV, another
provider), so counting in [start, end) cannot tell a partial month from a
full one.

The subset test runs in SQL and costs one index range scan: the expected
minutes are the minute starts inside the calendar's session windows (a few
dozen windows a month, adjacent ones merged: one for a month of crypto), so
the stored minutes that are expected are the stored rows inside those windows
on a minute boundary. (instrument, timeframe, ts) is the bar table's primary
key, so that count equals the expected count exactly when every expected
minute is stored. Measured on a month of 24/7 minutes (44,640 rows): 15 ms,
as cheap as the old plain count (20 ms) and 15x faster than reading the
timestamps into Python to compare sets (235 ms); a year: 0.2 s against 2.9 s
(`python -m bench.bench_coverage`). Daily bars: the sessions' local days (New York
for US equities, UTC for crypto, as the bars are stamped) against the stored
days.

Which minutes are expected depends on the provider: US equities' extended
session (04:00-20:00 New York) where it serves pre- and post-market
(`serves_extended_hours`), the regular session otherwise; crypto is 24/7.
`instrument_extended` answers it for an instrument (its history provider), and
`verify_data` and the admin's coverage by month both count with
`minutes_coverage` on that answer, so they show the same figure for the same
range, never above 100 % (out-of-session bars are not expected ones) and never
expecting minutes that have not happened yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection

from core.minutes import ceil_minute, minutes_starting
from marketdata import calendar

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Coverage:
    expected: int  # bars the calendar expects in the range
    present: int  # of those, how many are stored

    @property
    def missing(self) -> int:
        return self.expected - self.present

    @property
    def complete(self) -> bool:
        """Every expected bar is stored (a range expecting none is not
        "complete": there is nothing to say it was ever looked at)."""
        return self.expected > 0 and self.present >= self.expected


def _zone(asset_class: str):
    return UTC if asset_class in calendar.ALWAYS_OPEN_CLASSES else calendar.NEW_YORK


def expected_windows(
    *, asset_class: str, start: datetime, end: datetime, extended: bool = False
) -> list[tuple[datetime, datetime]]:
    """[lo, hi) spans of [start, end) during which the market is open; every
    minute start inside one is an expected minute (`calendar.expected_minutes`),
    adjacent spans merged."""
    zone = _zone(asset_class)
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    windows: list[tuple[datetime, datetime]] = []
    for session in calendar.sessions(asset_class, first, last, extended=extended):
        lo, hi = ceil_minute(max(session.open, start)), min(session.close, end)
        if hi <= lo:
            continue
        if windows and windows[-1][1] == lo:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
    return windows


def _minutes_in(windows: list[tuple[datetime, datetime]]) -> int:
    return sum(minutes_starting(lo, hi) for lo, hi in windows)


def minutes_coverage(
    *,
    instrument_id: int,
    asset_class: str,
    start: datetime,
    end: datetime,
    extended: bool = False,
) -> Coverage:
    windows = expected_windows(
        asset_class=asset_class, start=start, end=end, extended=extended
    )
    expected = _minutes_in(windows)
    if not expected:
        return Coverage(expected=0, present=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM marketdata_bar b "
            "JOIN unnest(%s::timestamptz[], %s::timestamptz[]) AS w(lo, hi) "
            "ON b.ts >= w.lo AND b.ts < w.hi "
            "WHERE b.instrument_id = %s AND b.timeframe = '1m' "
            "AND b.ts >= %s AND b.ts < %s "
            "AND date_bin('1 minute', b.ts, %s::timestamptz) = b.ts",
            [
                [lo for lo, _ in windows],
                [hi for _, hi in windows],
                instrument_id,
                windows[0][0],
                windows[-1][1],
                EPOCH,
            ],
        )
        present = cursor.fetchone()[0]
    return Coverage(expected=expected, present=present)


def instrument_extended(*, instrument) -> bool:
    """Whether `instrument`'s minutes are expected in the extended session:
    its history provider serves pre- and post-market (equities only)."""
    from marketdata.providers import serves_extended_hours
    from marketdata.providers.routing import history_provider_name

    if instrument.asset_class in calendar.ALWAYS_OPEN_CLASSES:
        return False
    return serves_extended_hours(history_provider_name(instrument=instrument))


def monthly_minutes_coverage(*, instrument, now: datetime) -> list[dict]:
    """Per UTC month holding 1-minute bars of `instrument`, newest first:
    `stored` (every 1-minute bar), `expected` (calendar minutes from the
    month's start to its end or `now`, whichever is earlier), `present` (the
    expected ones that are stored), `coverage` (%), `first`, `last`."""
    extended = instrument_extended(instrument=instrument)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('month', ts AT TIME ZONE 'UTC'), count(*), min(ts), "
            "max(ts) FROM marketdata_bar WHERE instrument_id = %s "
            "AND timeframe = '1m' GROUP BY 1 ORDER BY 1 DESC",
            [instrument.id],
        )
        months = cursor.fetchall()
    rows = []
    for month, stored, first, last in months:
        lo = month.replace(tzinfo=UTC)
        hi = min((lo + timedelta(days=32)).replace(day=1), now)
        found = (
            minutes_coverage(
                instrument_id=instrument.id,
                asset_class=instrument.asset_class,
                start=lo,
                end=hi,
                extended=extended,
            )
            if hi > lo
            else Coverage(expected=0, present=0)
        )
        rows.append(
            {
                "month": lo,
                "end": hi,
                "stored": stored,
                "expected": found.expected,
                "present": found.present,
                "outside": stored - found.present,
                "coverage": (
                    100.0 * found.present / found.expected if found.expected else None
                ),
                "extended": extended,
                "first": first,
                "last": last,
            }
        )
    return rows


def expected_days(*, asset_class: str, start: datetime, end: datetime) -> list[date]:
    last = (end - timedelta(microseconds=1)).date()
    return [s.day for s in calendar.sessions(asset_class, start.date(), last)]


def days_coverage(
    *, instrument_id: int, asset_class: str, start: datetime, end: datetime
) -> Coverage:
    days = expected_days(asset_class=asset_class, start=start, end=end)
    if not days:
        return Coverage(expected=0, present=0)
    zone = "UTC" if asset_class in calendar.ALWAYS_OPEN_CLASSES else "America/New_York"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT (ts AT TIME ZONE %s)::date) FROM marketdata_bar "
            "WHERE instrument_id = %s AND timeframe = '1d' AND ts >= %s AND ts < %s "
            "AND (ts AT TIME ZONE %s)::date = ANY(%s::date[])",
            [zone, instrument_id, start, end, zone, days],
        )
        present = cursor.fetchone()[0]
    return Coverage(expected=len(days), present=present)


def range_coverage(
    *,
    instrument_id: int,
    asset_class: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    extended: bool = False,
) -> Coverage:
    """Expected and stored-of-expected bars of `timeframe` ("1m" or "1d") in
    [start, end); other timeframes expect nothing."""
    if timeframe == "1m":
        return minutes_coverage(
            instrument_id=instrument_id,
            asset_class=asset_class,
            start=start,
            end=end,
            extended=extended,
        )
    if timeframe == "1d":
        return days_coverage(
            instrument_id=instrument_id, asset_class=asset_class, start=start, end=end
        )
    return Coverage(expected=0, present=0)
