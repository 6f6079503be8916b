"""Resampling in SQL equals an independent computation in Python."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from marketdata.calendar import expected_minutes, nyse_is_early_close
from marketdata.rollups import rollups_refresh
from marketdata.selectors import bars_resampled
from marketdata.services import bars_upsert

from .conftest import make_minutes

NY = ZoneInfo("America/New_York")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def python_resample(rows, timeframe: str, *, equity: bool):
    """Reference: group minute rows by bucket in plain Python."""
    groups: OrderedDict = OrderedDict()
    for row in sorted(rows, key=lambda r: r[2]):
        ts = row[2]
        if timeframe == "1d":
            if equity:
                local = ts.astimezone(NY)
                close = time(13) if nyse_is_early_close(local.date()) else time(16)
                if local.weekday() >= 5 or not (time(9, 30) <= local.time() < close):
                    continue
                key = datetime.combine(local.date(), time(0), NY).astimezone(UTC)
            else:
                key = datetime.combine(ts.date(), time(0), UTC)
        else:
            step = {"5m": 5, "15m": 15, "1h": 60}[timeframe]
            key = EPOCH + timedelta(
                minutes=((ts - EPOCH) // timedelta(minutes=step)) * step
            )
        groups.setdefault(key, []).append(row)
    result = []
    for key, members in groups.items():
        result.append(
            (
                key,
                members[0][3],
                max(m[4] for m in members),
                min(m[5] for m in members),
                members[-1][6],
                sum(m[7] for m in members),
            )
        )
    return result


def sql(instrument, timeframe, start, end, limit=100000):
    return [
        tuple(row[:6])
        for row in bars_resampled(
            instrument=instrument,
            timeframe=timeframe,
            start=start,
            end=end,
            limit=limit,
        )
    ]


@pytest.fixture
def equity_rows(instruments):
    aapl = instruments["AAPL"]
    start = datetime(2024, 11, 20, tzinfo=UTC)  # spans Thanksgiving + its early close
    end = datetime(2024, 12, 4, tzinfo=UTC)
    minutes = list(expected_minutes("equity", start, end))
    # Extended hours: pre-market minutes that must not reach daily bars.
    extra = [
        datetime(2024, 11, 21, 13, 0, tzinfo=UTC) + timedelta(minutes=i)
        for i in range(30)
    ]
    # ...and minutes after the 13:00 early close on Black Friday.
    extra += [
        datetime(2024, 11, 29, 18, 30, tzinfo=UTC) + timedelta(minutes=i)
        for i in range(20)
    ]
    rows = make_minutes(instrument=aapl, minutes=sorted(minutes + extra), seed=3)
    bars_upsert(rows=rows, provider="test")
    return aapl, rows, start, end


@pytest.fixture
def crypto_rows(instruments):
    btc = instruments["BTC/USD"]
    start = datetime(2024, 3, 9, 22, 7, tzinfo=UTC)
    minutes = [start + timedelta(minutes=i) for i in range(3 * 1440)]
    minutes = [m for i, m in enumerate(minutes) if i % 97 != 5]  # some holes
    rows = make_minutes(instrument=btc, minutes=minutes, seed=11, decimals=8)
    bars_upsert(rows=rows, provider="test")
    return btc, rows, start, minutes[-1] + timedelta(minutes=1)


@pytest.mark.parametrize("timeframe", ["5m", "15m", "1h", "1d"])
@pytest.mark.parametrize("with_rollups", [False, True])
def test_equity_resampling_matches_python(equity_rows, timeframe, with_rollups):
    aapl, rows, start, end = equity_rows
    if with_rollups:
        rollups_refresh(
            instrument_id=aapl.id, asset_class="equity", start=start, end=end
        )
    expected = python_resample(rows, timeframe, equity=True)
    assert sql(aapl, timeframe, start - timedelta(days=1), end) == expected
    assert len(expected) > 5


@pytest.mark.parametrize("timeframe", ["5m", "15m", "1h", "1d"])
@pytest.mark.parametrize("with_rollups", [False, True])
def test_crypto_resampling_matches_python(crypto_rows, timeframe, with_rollups):
    btc, rows, start, end = crypto_rows
    if with_rollups:
        rollups_refresh(
            instrument_id=btc.id, asset_class="crypto", start=start, end=end
        )
    expected = python_resample(rows, timeframe, equity=False)
    assert sql(btc, timeframe, start - timedelta(days=1), end) == expected


def test_equity_daily_excludes_extended_hours_and_honours_early_close(equity_rows):
    aapl, rows, start, end = equity_rows
    daily = {row[0]: row for row in sql(aapl, "1d", start, end)}
    black_friday = datetime(2024, 11, 29, 5, 0, tzinfo=UTC)  # NY midnight (EST)
    thanksgiving = datetime(2024, 11, 28, 5, 0, tzinfo=UTC)
    assert black_friday in daily and thanksgiving not in daily
    session = [
        r
        for r in rows
        if datetime(2024, 11, 29, 14, 30, tzinfo=UTC)
        <= r[2]
        < datetime(2024, 11, 29, 18, 0, tzinfo=UTC)
    ]
    assert daily[black_friday][4] == session[-1][6]  # close = 12:59 ET minute
    assert daily[black_friday][5] == sum(r[7] for r in session)


def test_rollups_never_lag_new_minutes(equity_rows, store_minutes):
    aapl, rows, start, end = equity_rows
    rollups_refresh(instrument_id=aapl.id, asset_class="equity", start=start, end=end)
    before = sql(aapl, "1h", start, end + timedelta(days=3))
    # New minutes after the refresh (a stream worker that has not refreshed yet).
    later = list(expected_minutes("equity", end, end + timedelta(days=2)))
    new_rows = store_minutes(aapl, later, seed=99)
    after = sql(aapl, "1h", start, end + timedelta(days=3))
    assert after[: len(before)] == before
    assert after == python_resample(rows + new_rows, "1h", equity=True)


def test_refresh_is_idempotent_and_limit_returns_newest(equity_rows):
    aapl, rows, start, end = equity_rows
    first = rollups_refresh(
        instrument_id=aapl.id, asset_class="equity", start=start, end=end
    )
    second = rollups_refresh(
        instrument_id=aapl.id, asset_class="equity", start=start, end=end
    )
    assert first == second and first.hours > 0
    newest = sql(aapl, "1h", start, end, limit=7)
    assert newest == python_resample(rows, "1h", equity=True)[-7:]
    newest_5m = sql(aapl, "5m", start, end, limit=11)
    assert newest_5m == python_resample(rows, "5m", equity=True)[-11:]
