"""Whole minutes: the unit bars are stamped in, gaps are recorded in and
alerts count in. The one definition of a time's minute, for every layer."""

from __future__ import annotations

from datetime import datetime, timedelta

MINUTE = timedelta(minutes=1)


def floor_minute(at: datetime) -> datetime:
    """The start of the minute holding `at`, in `at`'s own zone (aware stays
    aware, and a repeated wall time keeps its `fold`). Every zone in use is
    offset from UTC by whole minutes, so this is also the UTC minute."""
    return at.replace(second=0, microsecond=0)


def ceil_minute(at: datetime) -> datetime:
    """`at` itself when it starts a minute, else the start of the next one."""
    floor = floor_minute(at)
    return floor if floor == at else floor + MINUTE


def minutes_starting(lo: datetime, hi: datetime) -> int:
    """How many minutes start in [lo, hi), `lo` being a minute start."""
    return -((lo - hi) // MINUTE)
