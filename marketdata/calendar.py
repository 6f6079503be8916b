"""Market calendar: NYSE sessions (holidays, early closes) and 24/7 crypto/FX-style markets.

Every function takes `extended`: for US equities the extended session runs from
04:00 to 20:00 New York time on trading days (to 17:00 on early-close days), the
hours Alpaca streams and serves history for. Live freshness uses the regular
session; what counts as a minute that may hold a bar (gaps, coverage, the
sweep) uses the extended one where the provider serves it.

Everything returned is UTC; New York local time is used only to build sessions.
Holidays come from the `holidays` package's NYSE calendar (which includes
one-off closures); early closes (13:00 ET) follow the exchange's standing rules:
July 3 when Independence Day falls Tuesday–Friday, the day after Thanksgiving,
and December 24 when it falls Monday–Thursday.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from core.minutes import MINUTE, ceil_minute, minutes_starting

NEW_YORK = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
EXTENDED_OPEN = time(4, 0)
EXTENDED_CLOSE = time(20, 0)
EXTENDED_EARLY_CLOSE = time(17, 0)
ALWAYS_OPEN_CLASSES = frozenset({"crypto"})


def market_date(asset_class: str, at: datetime | None = None) -> date:
    """The date where instruments of `asset_class` trade, now (or at `at`):
    New York's for equities, UTC's for 24/7 markets. A position's session day
    P/L counts the transactions of that date, so one recorded "today" in a New
    York evening (already tomorrow in UTC) belongs to New York's day."""
    zone = UTC if asset_class in ALWAYS_OPEN_CLASSES else NEW_YORK
    return (at or datetime.now(UTC)).astimezone(zone).date()


@dataclass(frozen=True, slots=True)
class Session:
    day: date
    open: datetime  # UTC
    close: datetime  # UTC, exclusive: the last minute bar starts at close - 1 min
    early_close: bool = False

    @property
    def minutes(self) -> int:
        return int((self.close - self.open).total_seconds() // 60)


@lru_cache(maxsize=64)
def _nyse_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.financial_holidays("NYSE", years=year).keys())


def nyse_is_holiday(day: date) -> bool:
    return day in _nyse_holidays(day.year)


def _thanksgiving(year: int) -> date:
    november_first = date(year, 11, 1)
    first_thursday = november_first + timedelta(days=(3 - november_first.weekday()) % 7)
    return first_thursday + timedelta(weeks=3)


def nyse_is_early_close(day: date) -> bool:
    if day.weekday() >= 5 or nyse_is_holiday(day):
        return False
    if day.month == 7 and day.day == 3:
        return day.weekday() <= 3  # Independence Day on Tue–Fri
    if day.month == 12 and day.day == 24:
        return day.weekday() <= 3
    return day == _thanksgiving(day.year) + timedelta(days=1)


def nyse_session(day: date, *, extended: bool = False) -> Session | None:
    """The NYSE session on `day` (regular, or with pre- and post-market when
    `extended`), or None when the market is closed."""
    if day.weekday() >= 5 or nyse_is_holiday(day):
        return None
    early = nyse_is_early_close(day)
    if extended:
        open_at, close_at = (
            EXTENDED_OPEN,
            (EXTENDED_EARLY_CLOSE if early else EXTENDED_CLOSE),
        )
    else:
        open_at, close_at = REGULAR_OPEN, EARLY_CLOSE if early else REGULAR_CLOSE
    opens = datetime.combine(day, open_at, NEW_YORK).astimezone(UTC)
    closes = datetime.combine(day, close_at, NEW_YORK).astimezone(UTC)
    return Session(day=day, open=opens, close=closes, early_close=early)


def _all_day_session(day: date) -> Session:
    opens = datetime.combine(day, time(0), UTC)
    return Session(day=day, open=opens, close=opens + timedelta(days=1))


def session_for(
    asset_class: str, day: date, *, extended: bool = False
) -> Session | None:
    if asset_class in ALWAYS_OPEN_CLASSES:
        return _all_day_session(day)
    return nyse_session(day, extended=extended)


def sessions(
    asset_class: str, start: date, end: date, *, extended: bool = False
) -> Iterator[Session]:
    """Sessions on trading days from `start` to `end` inclusive."""
    day = start
    while day <= end:
        session = session_for(asset_class, day, extended=extended)
        if session is not None:
            yield session
        day += timedelta(days=1)


def _local_day(asset_class: str, at: datetime) -> date:
    zone = UTC if asset_class in ALWAYS_OPEN_CLASSES else NEW_YORK
    return at.astimezone(zone).date()


def is_open(asset_class: str, at: datetime, *, extended: bool = False) -> bool:
    session = session_for(asset_class, _local_day(asset_class, at), extended=extended)
    return session is not None and session.open <= at < session.close


def _session_windows(
    asset_class: str, start: datetime, end: datetime, extended: bool = False
):
    first_day = _local_day(asset_class, start) - timedelta(days=1)
    last_day = _local_day(asset_class, end)
    for session in sessions(asset_class, first_day, last_day, extended=extended):
        lo, hi = ceil_minute(max(session.open, start)), min(session.close, end)
        if hi > lo:
            yield lo, hi


def expected_minutes(
    asset_class: str, start: datetime, end: datetime, *, extended: bool = False
) -> Iterator[datetime]:
    """Every minute-bar start in [start, end) during which the market is open."""
    for lo, hi in _session_windows(asset_class, start, end, extended):
        minute = lo
        while minute < hi:
            yield minute
            minute += MINUTE


def expected_minute_count(
    asset_class: str, start: datetime, end: datetime, *, extended: bool = False
) -> int:
    windows = _session_windows(asset_class, start, end, extended)
    return sum(minutes_starting(lo, hi) for lo, hi in windows)
