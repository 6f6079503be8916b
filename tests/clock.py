"""A `datetime` whose `now()` is fixed, for a test to patch into a module
that reads the wall clock (`monkeypatch.setattr(module, "datetime", ...)`)."""

from __future__ import annotations

from datetime import datetime


def fixed_datetime(at: datetime) -> type[datetime]:
    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return at if tz is None else at.astimezone(tz)

    return Clock
