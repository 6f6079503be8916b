"""Data verification: what is stored against what the market calendar expects.

Per instrument: bars, first/last, trading days, expected vs actual minutes
(NYSE sessions with holidays and early closes for US equities and ETFs, 24/7
for crypto), coverage, the largest gaps, OHLC violations with examples and
duplicates. Holes are found in SQL (consecutive stored minutes more than one
minute apart, plus the edges of the range); only the holes are then measured
against the calendar, so a year of minutes costs one index scan.

Which minutes are expected, and which stored ones count, is
`marketdata.coverage`'s answer (`instrument_extended`, `minutes_coverage`):
US equities' extended session where the history provider serves pre- and
post-market, the regular one otherwise, 24/7 for crypto. The admin's coverage
by month counts with the same function, so the two agree.

Only minutes are measured. Stored hourly and daily bars (CSV imports,
provider daily loads) are counted in `stored_hourly`/`stored_daily` for
information; they neither fill nor count against minute coverage, and the
range defaults come from the minutes alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.db import connection

from core.minutes import MINUTE
from marketdata import calendar
from marketdata.coverage import instrument_extended, minutes_coverage
from marketdata.models import Instrument

NEW_YORK = "America/New_York"
VIOLATION_SQL = (
    "high < open OR high < close OR low > open OR low > close OR low > high "
    "OR volume < 0 OR open <= 0 OR low <= 0"
)


@dataclass
class GapFound:
    start: datetime
    end: datetime
    missing: int  # expected minutes inside [start, end)


@dataclass
class InstrumentReport:
    symbol: str
    asset_class: str
    start: datetime | None
    end: datetime | None
    bars: int = 0
    first: datetime | None = None
    last: datetime | None = None
    trading_days: int = 0
    expected_minutes: int = 0
    session_minutes: int = 0
    outside_session: int = 0
    duplicates: int = 0
    violations: int = 0
    violation_examples: list[dict] = field(default_factory=list)
    gaps: list[GapFound] = field(default_factory=list)
    gap_count: int = 0
    missing_minutes: int = 0
    stored_hourly: int = 0  # 1h bars stored in the range (not minute coverage)
    stored_daily: int = 0
    extended: bool = False  # pre- and post-market minutes expected

    @property
    def coverage(self) -> float:
        if not self.expected_minutes:
            return 100.0 if not self.bars else 0.0
        return 100.0 * self.session_minutes / self.expected_minutes

    @property
    def clean(self) -> bool:
        return not (self.violations or self.duplicates or self.gap_count)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["coverage"] = round(self.coverage, 4)
        data["clean"] = self.clean
        for key in ("start", "end", "first", "last"):
            data[key] = data[key].isoformat() if data[key] else None
        data["gaps"] = [
            {
                "start": g.start.isoformat(),
                "end": g.end.isoformat(),
                "missing": g.missing,
            }
            for g in self.gaps
        ]
        return data


def _holes(cursor, *, instrument_id: int, start: datetime, end: datetime):
    """(hole_start, hole_end) for every run of absent minutes between stored
    minutes, and at both edges of [start, end)."""
    cursor.execute(
        """
        SELECT prev_ts + interval '1 minute', ts FROM (
            SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev_ts
            FROM marketdata_bar
            WHERE instrument_id = %s AND timeframe = '1m' AND ts >= %s AND ts < %s
        ) AS steps
        WHERE ts - prev_ts > interval '1 minute'
        """,
        [instrument_id, start, end],
    )
    return cursor.fetchall()


def verify_instrument(
    *,
    instrument: Instrument,
    start: datetime | None = None,
    end: datetime | None = None,
    largest: int = 10,
    examples: int = 5,
) -> InstrumentReport:
    """Verify an instrument's 1-minute bars in [start, end) (default: from
    the session of its first stored minute to just after its last)."""
    asset_class = instrument.asset_class
    extended = instrument_extended(instrument=instrument)
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
        cursor.execute(
            "SELECT count(*), min(ts), max(ts) FROM marketdata_bar "
            "WHERE instrument_id = %s AND timeframe = '1m'"
            + (" AND ts >= %s" if start else "")
            + (" AND ts < %s" if end else ""),
            [instrument.id, *([start] if start else []), *([end] if end else [])],
        )
        bars, first, last = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FILTER (WHERE timeframe = '1h'), "
            "count(*) FILTER (WHERE timeframe = '1d') FROM marketdata_bar "
            "WHERE instrument_id = %s AND timeframe IN ('1h', '1d')"
            + (" AND ts >= %s" if start else "")
            + (" AND ts < %s" if end else ""),
            [instrument.id, *([start] if start else []), *([end] if end else [])],
        )
        stored_hourly, stored_daily = cursor.fetchone()
        if start is None and first is not None:
            zone = (
                UTC
                if asset_class in calendar.ALWAYS_OPEN_CLASSES
                else calendar.NEW_YORK
            )
            day = first.astimezone(zone).date()
            session = calendar.session_for(asset_class, day, extended=extended)
            start = min(first, session.open) if session else first
        if end is None and last is not None:
            end = last + MINUTE
        report = InstrumentReport(
            symbol=instrument.symbol,
            asset_class=asset_class,
            start=start,
            end=end,
            bars=bars,
            first=first,
            last=last,
            stored_hourly=stored_hourly,
            stored_daily=stored_daily,
            extended=extended,
        )
        if start is None or end is None or end <= start:
            return report

        found = minutes_coverage(
            instrument_id=instrument.id,
            asset_class=asset_class,
            start=start,
            end=end,
            extended=extended,
        )
        report.expected_minutes = found.expected
        report.session_minutes = found.present
        report.outside_session = bars - found.present
        zone = "UTC" if asset_class in calendar.ALWAYS_OPEN_CLASSES else NEW_YORK
        local = ZoneInfo(zone)
        days = [
            s.day
            for s in calendar.sessions(
                asset_class,
                start.astimezone(local).date(),
                end.astimezone(local).date(),
            )
        ]
        cursor.execute(
            "SELECT count(DISTINCT (ts AT TIME ZONE %s)::date) FROM marketdata_bar "
            "WHERE instrument_id = %s AND timeframe = '1m' AND ts >= %s AND ts < %s "
            "AND (ts AT TIME ZONE %s)::date = ANY(%s::date[])",
            [zone, instrument.id, start, end, zone, days],
        )
        report.trading_days = cursor.fetchone()[0]

        cursor.execute(
            "SELECT count(*) - count(DISTINCT ts) FROM marketdata_bar "
            "WHERE instrument_id = %s AND timeframe = '1m' AND ts >= %s AND ts < %s",
            [instrument.id, start, end],
        )
        report.duplicates = cursor.fetchone()[0]

        cursor.execute(
            f"SELECT count(*) FROM marketdata_bar WHERE instrument_id = %s "
            f"AND timeframe = '1m' AND ts >= %s AND ts < %s AND ({VIOLATION_SQL})",
            [instrument.id, start, end],
        )
        report.violations = cursor.fetchone()[0]
        if report.violations:
            cursor.execute(
                f"SELECT ts, open, high, low, close, volume FROM marketdata_bar "
                f"WHERE instrument_id = %s AND timeframe = '1m' AND ts >= %s "
                f"AND ts < %s AND ({VIOLATION_SQL}) ORDER BY ts LIMIT %s",
                [instrument.id, start, end, examples],
            )
            report.violation_examples = [
                {
                    "ts": ts.isoformat(),
                    "open": str(o),
                    "high": str(h),
                    "low": str(lo),
                    "close": str(c),
                    "volume": str(v),
                }
                for ts, o, h, lo, c, v in cursor.fetchall()
            ]

        holes = _holes(cursor, instrument_id=instrument.id, start=start, end=end)
    if first is None:
        holes = [(start, end)]
    else:
        holes = [(start, first), *holes, (last + MINUTE, end)]
    gaps = []
    for lo, hi in holes:
        if hi <= lo:
            continue
        missing = calendar.expected_minute_count(asset_class, lo, hi, extended=extended)
        if missing:
            gaps.append(GapFound(start=lo, end=hi, missing=missing))
    report.gap_count = len(gaps)
    report.missing_minutes = sum(g.missing for g in gaps)
    report.gaps = sorted(gaps, key=lambda g: (-g.missing, g.start))[:largest]
    return report
