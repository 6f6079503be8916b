"""`live_bars_store` given the closed minutes of several instruments (the
stream worker's minute close): every instrument's minutes and rollups are
stored, and one whose rollup refresh fails does not hold back the others."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import DatabaseError, connection

from core.logs import RateLimitedLog
from marketdata import rollups
from marketdata.models import Bar
from streaming import services
from streaming.services import live_bars_store

pytestmark = pytest.mark.django_db

HOUR = datetime(2024, 11, 26, 15, tzinfo=UTC)  # 10:00 New York, in the session
MIDNIGHT = datetime(2024, 11, 27, tzinfo=UTC)


def minutes(instrument, first: datetime, count: int, price: int) -> list[tuple]:
    """`count` minutes from `first`: close = price + i, volume = i + 1."""
    return [
        (instrument.id, "1m", first + timedelta(minutes=i), D(price + i),
         D(price + i), D(price + i), D(price + i), D(i + 1), None, 1)
        for i in range(count)
    ]  # fmt: skip


def closed_minutes(instruments) -> dict[str, list[tuple]]:
    """AAPL and BTC/USD across an hour (BTC/USD across a UTC day too), MSFT
    inside one, from two providers."""
    aapl, msft, btc = (instruments[s] for s in ("AAPL", "MSFT", "BTC/USD"))
    return {
        "simulator": minutes(aapl, HOUR - timedelta(minutes=2), 4, 100)
        + minutes(btc, MIDNIGHT - timedelta(minutes=2), 4, 500),
        "alpaca": minutes(msft, HOUR + timedelta(minutes=30), 2, 300),
    }


def rollup_rows() -> dict[tuple, tuple]:
    """(instrument, timeframe, bucket) -> (minutes, volume, close)"""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT instrument_id, timeframe, ts, minutes, volume, close "
            "FROM marketdata_bar_rollup"
        )
        return {row[:3]: row[3:] for row in cursor.fetchall()}


def test_every_instrument_gets_its_minutes_and_rollups(instruments):
    aapl, msft, btc = (instruments[s].id for s in ("AAPL", "MSFT", "BTC/USD"))
    assert live_bars_store(rows=closed_minutes(instruments), partial={}) == 10
    stored = Bar.objects.filter(timeframe="1m").values_list("instrument_id", flat=True)
    assert sorted(stored) == sorted([aapl] * 4 + [msft] * 2 + [btc] * 4)
    ny_day = datetime(2024, 11, 26, 5, tzinfo=UTC)
    assert rollup_rows() == {
        (aapl, "1h", HOUR - timedelta(hours=1)): (2, 3, 101),
        (aapl, "1h", HOUR): (2, 7, 103),
        (aapl, "1d", ny_day): (4, 10, 103),
        (msft, "1h", HOUR): (2, 3, 301),
        (msft, "1d", ny_day): (2, 3, 301),
        (btc, "1h", MIDNIGHT - timedelta(hours=1)): (2, 3, 501),
        (btc, "1h", MIDNIGHT): (2, 7, 503),
        (btc, "1d", MIDNIGHT - timedelta(days=1)): (2, 3, 501),
        (btc, "1d", MIDNIGHT): (2, 7, 503),
    }


def test_an_instrument_whose_refresh_fails_does_not_hold_back_the_others(
    instruments, monkeypatch, caplog
):
    aapl = instruments["AAPL"].id
    refresh_many = rollups.rollups_refresh_many

    def failing(*, spans, asset_classes):
        if len(spans) > 1 or aapl in spans:
            raise DatabaseError("refresh failed")
        return refresh_many(spans=spans, asset_classes=asset_classes)

    monkeypatch.setattr(rollups, "rollups_refresh_many", failing)
    monkeypatch.setattr(services, "failures", RateLimitedLog(services.logger))
    with caplog.at_level(logging.WARNING, logger=services.logger.name):
        assert live_bars_store(rows=closed_minutes(instruments), partial={}) == 10
    refreshed = {key[0] for key in rollup_rows()}
    assert refreshed == {instruments[s].id for s in ("MSFT", "BTC/USD")}
    assert "batched rollup refresh failed" in caplog.text
    assert f"rollup refresh failed for instrument {aapl}" in caplog.text
