"""`core.minutes`: the one floor/ceil to the minute every layer uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.minutes import MINUTE, ceil_minute, floor_minute, minutes_starting

NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30: a half-hour offset


@pytest.mark.parametrize(
    ("at", "floor"),
    [
        (datetime(2026, 3, 2, 14, 30, 59, 999_999, tzinfo=UTC), "2026-03-02T14:30"),
        (datetime(2026, 3, 2, 14, 30, tzinfo=UTC), "2026-03-02T14:30"),
        (datetime(2026, 3, 2, 9, 30, 0, 1, tzinfo=NEW_YORK), "2026-03-02T14:30"),
        (datetime(2026, 3, 2, 20, 0, 30, tzinfo=KOLKATA), "2026-03-02T14:30"),
        # 01:30 happens twice on 2026-11-01 in New York; the second (fold=1,
        # EST) one is 06:30 UTC and must stay the second.
        (datetime(2026, 11, 1, 1, 30, 45, tzinfo=NEW_YORK, fold=1), "2026-11-01T06:30"),
        (datetime(2026, 11, 1, 1, 30, 45, tzinfo=NEW_YORK), "2026-11-01T05:30"),
    ],
)
def test_floor_is_the_utc_minute_of_the_instant_in_the_callers_zone(at, floor):
    floored = floor_minute(at)
    assert floored.tzinfo is at.tzinfo
    assert floored.astimezone(UTC) == datetime.fromisoformat(floor).replace(tzinfo=UTC)
    assert floored <= at < floored + MINUTE


def test_ceil_keeps_a_minute_start_and_moves_anything_later_to_the_next():
    start = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert ceil_minute(start) == start
    assert ceil_minute(start + timedelta(microseconds=1)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    at = datetime(2026, 3, 2, 9, 29, 1, tzinfo=NEW_YORK)
    assert ceil_minute(at) == datetime(2026, 3, 2, 9, 30, tzinfo=NEW_YORK)
    assert ceil_minute(at).tzinfo is NEW_YORK


@pytest.mark.parametrize(
    ("length", "count"),
    [
        (timedelta(0), 0),
        (timedelta(microseconds=1), 1),
        (MINUTE, 1),
        (MINUTE + timedelta(microseconds=1), 2),
        (timedelta(hours=6, minutes=30), 390),  # a regular NYSE session
    ],
)
def test_minutes_starting_counts_a_started_minute_whole(length, count):
    lo = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    assert minutes_starting(lo, lo + length) == count
