"""Bar reads and the one bar delete other apps use (the stream worker's
restart goes through these, not through the bar table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from marketdata.models import Bar
from marketdata.selectors import bar_last_minute_ts, bars_session_figures
from marketdata.services import bar_live_minute_discard, bars_upsert

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def _minute(instrument, ts, o, h, low, c, v, *, origin="live", timeframe="1m"):
    bars_upsert(
        rows=[(instrument.id, timeframe, ts, D(o), D(h), D(low), D(c), D(v), None, 1)],
        provider="simulator",
        origin=origin,
    )


def test_session_figures_come_from_the_day_minutes_and_the_newer_previous_close(
    instruments,
):
    aapl = instruments["AAPL"]
    _minute(aapl, DAY - timedelta(days=1), 90, 91, 89, 90, 5, timeframe="1d")
    _minute(aapl, DAY - timedelta(minutes=1), 95, 96, 94, 95.5, 5)
    _minute(aapl, DAY + timedelta(minutes=1), 100, 103, 99, 102, 10)
    _minute(aapl, DAY + timedelta(minutes=2), 102, 104, 98, 101, 20)
    figures = bars_session_figures(
        instrument_id=aapl.id, day_start=DAY, day_end=DAY + timedelta(days=1)
    )
    assert (figures["open"], figures["high"], figures["low"]) == (100, 104, 98)
    assert (figures["last"], figures["volume"]) == (101, 30)
    assert figures["prev_close"] == D("95.5")  # the later minute beats the daily bar
    assert bar_last_minute_ts(instrument_id=aapl.id) == DAY + timedelta(minutes=2)


def test_a_day_without_minutes_has_no_session_figures(instruments):
    msft = instruments["MSFT"]
    figures = bars_session_figures(
        instrument_id=msft.id, day_start=DAY, day_end=DAY + timedelta(days=1)
    )
    assert "open" not in figures and "prev_close" not in figures
    assert bar_last_minute_ts(instrument_id=msft.id) is None


def test_discarding_a_partial_minute_removes_only_a_live_one(instruments):
    aapl = instruments["AAPL"]
    live, backfilled = DAY, DAY + timedelta(minutes=1)
    _minute(aapl, live, 1, 1, 1, 1, 1)
    _minute(aapl, backfilled, 1, 2, 1, 2, 3, origin="backfill")
    assert bar_live_minute_discard(instrument_id=aapl.id, ts=live) == 1
    assert bar_live_minute_discard(instrument_id=aapl.id, ts=backfilled) == 0
    assert list(Bar.objects.filter(instrument=aapl).values_list("ts", flat=True)) == [
        backfilled
    ]
