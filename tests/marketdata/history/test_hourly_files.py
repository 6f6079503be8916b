"""Hourly CSV files: stored as 1h bars, shown by the bars endpoint for 1h and
aggregated for 1d where no minutes exist; minutes win where both exist."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Bar, BarOrigin, LoadJob
from marketdata.services import bars_upsert
from marketdata.verify import verify_instrument
from tests.marketdata.providers.conftest import FIXTURES

pytestmark = pytest.mark.django_db

CSV = FIXTURES / "csv"
TRADINGVIEW = CSV / "tradingview_hourly.csv"
STOOQ = CSV / "stooq_hourly.txt"
NY = ZoneInfo("America/New_York")
RANGE = {"start": "2024-03-01", "end": "2024-03-15"}


def load(path, symbol, *extra) -> None:
    call_command(
        "load_history", "--provider", "csv", "--file", str(path), "--symbol", symbol,
        *extra,
    )  # fmt: skip


def tradingview_rows() -> list[dict]:
    """The fixture read independently of the importer."""
    with TRADINGVIEW.open() as handle:
        return [
            {
                "t": int(row["time"]),
                "o": Decimal(row["open"]),
                "h": Decimal(row["high"]),
                "l": Decimal(row["low"]),
                "c": Decimal(row["close"]),
                "v": Decimal(row["Volume"]),
            }
            for row in csv.DictReader(handle)
        ]


def daily_from(rows: list[dict]) -> dict[int, dict]:
    """New York days (stamped at New York midnight) of hourly rows."""
    days: dict[int, list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["t"]):
        local = datetime.fromtimestamp(row["t"], UTC).astimezone(NY).date()
        midnight = int(
            datetime(local.year, local.month, local.day, tzinfo=NY).timestamp()
        )
        days.setdefault(midnight, []).append(row)
    return {
        t: {
            "o": float(hours[0]["o"]),
            "h": float(max(r["h"] for r in hours)),
            "l": float(min(r["l"] for r in hours)),
            "c": float(hours[-1]["c"]),
            "v": float(sum(r["v"] for r in hours)),
        }
        for t, hours in days.items()
    }


def bars(client, symbol: str, timeframe: str, **params) -> list[dict]:
    response = client.get(
        f"/api/instruments/{symbol}/bars",
        {"timeframe": timeframe, **RANGE, **params},
    )
    assert response.status_code == 200, response.content
    return response.json()["bars"]


def test_tradingview_file_loads_and_feeds_hourly_and_daily_charts(
    user_client, instruments, capsys
):
    load(TRADINGVIEW, "AAPL")
    assert "21 bars added" in capsys.readouterr().out
    stored = list(Bar.objects.filter(instrument=instruments["AAPL"]).order_by("ts"))
    assert {(b.timeframe, b.origin, b.provider) for b in stored} == {
        ("1h", BarOrigin.FILE, "csv")
    }
    assert LoadJob.objects.get().timeframe == "1h"
    expected = tradingview_rows()

    hourly = bars(user_client, "AAPL", "1h")
    assert [b["t"] for b in hourly] == [r["t"] for r in expected]
    # 09:30 stamps are kept: the first bar starts at 09:30 New York
    first = datetime.fromtimestamp(hourly[0]["t"], UTC).astimezone(NY)
    assert (first.hour, first.minute) == (9, 30)
    assert [(b["o"], b["h"], b["l"], b["c"], b["v"]) for b in hourly] == [
        (float(r["o"]), float(r["h"]), float(r["l"]), float(r["c"]), float(r["v"]))
        for r in expected
    ]

    daily = bars(user_client, "AAPL", "1d")
    assert {b["t"]: {k: b[k] for k in "ohlcv"} for b in daily} == daily_from(expected)
    assert [datetime.fromtimestamp(b["t"], UTC) for b in daily] == [
        datetime(2024, 3, 7, 5, tzinfo=UTC),
        datetime(2024, 3, 8, 5, tzinfo=UTC),
        datetime(2024, 3, 11, 4, tzinfo=UTC),  # after the DST change
    ]
    # Minutes and the finer resamples have nothing to show
    assert bars(user_client, "AAPL", "1m") == bars(user_client, "AAPL", "15m") == []

    # Paging back through stored hours works like through minutes
    response = user_client.get(
        "/api/instruments/AAPL/bars", {"timeframe": "1h", "limit": "5", **RANGE}
    )
    data = response.json()
    assert [b["t"] for b in data["bars"]] == [r["t"] for r in expected[-5:]]
    assert data["next_before"] == expected[-5]["t"]

    # A re-run adds nothing, and nothing changes
    load(TRADINGVIEW, "AAPL")
    assert "0 bars added" in capsys.readouterr().out
    assert Bar.objects.filter(instrument=instruments["AAPL"]).count() == 21
    assert bars(user_client, "AAPL", "1h") == hourly


def test_stooq_hourly_file_with_explicit_timeframe(user_client, instruments, capsys):
    load(STOOQ, "MSFT", "--timeframe", "1h")
    assert "14 bars added" in capsys.readouterr().out
    hourly = bars(user_client, "MSFT", "1h")
    assert len(hourly) == 14
    assert hourly[0]["t"] == int(datetime(2024, 3, 7, 14, 30, tzinfo=UTC).timestamp())
    assert hourly[0]["c"] == 409.86 and hourly[0]["v"] == 3196218
    daily = bars(user_client, "MSFT", "1d")
    assert len(daily) == 2
    assert daily[0]["o"] == hourly[0]["o"] and daily[0]["c"] == hourly[6]["c"]
    assert daily[0]["v"] == sum(b["v"] for b in hourly[:7])


def test_requested_timeframe_is_checked_against_the_file(instruments):
    with pytest.raises(CommandError, match="holds 1h bars, not 1d as requested"):
        load(TRADINGVIEW, "AAPL", "--timeframe", "1d")
    with pytest.raises(CommandError, match="holds 1d bars, not 1h as requested"):
        load(CSV / "yahoo_daily.csv", "AAPL", "--timeframe", "1h")
    assert Bar.objects.count() == 0


def test_provider_loads_do_not_fetch_hours(instruments):
    with pytest.raises(CommandError, match="Hourly bars load from CSV files only"):
        call_command("load_history", "--symbols", "AAPL", "--timeframe", "1h", "--sync")
    assert LoadJob.objects.count() == 0


def minute_rows(instrument, start: datetime, count: int) -> list[tuple]:
    return [
        (
            instrument.id,
            "1m",
            start + timedelta(minutes=i),
            Decimal("170"),
            Decimal("171"),
            Decimal("169"),
            Decimal("170.5"),
            Decimal(1000 + i),
            None,
            None,
        )
        for i in range(count)
    ]


def test_minutes_win_where_both_exist_and_nothing_counts_twice(
    user_client, instruments
):
    aapl = instruments["AAPL"]
    load(TRADINGVIEW, "AAPL")
    # Minutes 10:30–11:29 New York on 2024-03-08 (15:30–16:29Z), overlapping
    # the stored 10:30 hour exactly.
    minutes = minute_rows(aapl, datetime(2024, 3, 8, 15, 30, tzinfo=UTC), 60)
    bars_upsert(rows=minutes, provider="test")
    expected = tradingview_rows()
    covered = int(datetime(2024, 3, 8, 15, 30, tzinfo=UTC).timestamp())

    hourly = {b["t"]: b for b in bars(user_client, "AAPL", "1h")}
    assert covered not in hourly  # the stored hour is shadowed by the minutes
    at_15 = int(datetime(2024, 3, 8, 15, tzinfo=UTC).timestamp())
    at_16 = int(datetime(2024, 3, 8, 16, tzinfo=UTC).timestamp())
    assert hourly[at_15]["v"] == float(sum(r[7] for r in minutes[:30]))
    assert hourly[at_16]["v"] == float(sum(r[7] for r in minutes[30:]))
    others = [r for r in expected if r["t"] != covered]
    assert all(r["t"] in hourly for r in others)
    assert len(hourly) == len(others) + 2
    total = sum(b["v"] for b in hourly.values())
    assert total == float(sum(r["v"] for r in others) + sum(r[7] for r in minutes))

    # 1d: one source per day; 2024-03-08 has minutes, so only they count
    daily = {b["t"]: b for b in bars(user_client, "AAPL", "1d")}
    from_hours = daily_from(expected)
    march_8 = int(datetime(2024, 3, 8, 5, tzinfo=UTC).timestamp())
    assert daily[march_8]["v"] == float(sum(r[7] for r in minutes))
    for t, day in from_hours.items():
        if t != march_8:
            assert {k: daily[t][k] for k in "ohlcv"} == day


def test_stored_daily_bar_beats_hourly_bars(user_client, instruments):
    aapl = instruments["AAPL"]
    load(TRADINGVIEW, "AAPL")
    march_11 = datetime(2024, 3, 11, 4, tzinfo=UTC)  # New York midnight (EDT)
    bars_upsert(
        rows=[
            (aapl.id, "1d", march_11, Decimal("172.94"), Decimal("174.38"),
             Decimal("172.05"), Decimal("172.75"), Decimal(60139473), None, None)
        ],
        provider="test",
    )  # fmt: skip
    daily = {b["t"]: b for b in bars(user_client, "AAPL", "1d")}
    assert len(daily) == 3
    day = daily[int(march_11.timestamp())]
    assert (day["o"], day["c"], day["v"]) == (172.94, 172.75, 60139473)


def hour_rows(instrument, starts: list[datetime]) -> list[tuple]:
    return [
        (instrument.id, "1h", ts, Decimal("10"), Decimal("11"), Decimal("9"),
         Decimal("10.5"), Decimal(100 * (i + 1)), None, None)
        for i, ts in enumerate(starts)
    ]  # fmt: skip


def test_equity_days_from_hours_use_the_hours_overlapping_the_session(
    user_client, instruments
):
    """An extended-hours export on the hour: 04:00–19:00 New York."""
    aapl = instruments["AAPL"]
    starts = [datetime(2024, 3, 7, h, tzinfo=NY) for h in range(4, 20)]
    rows = hour_rows(aapl, starts)
    bars_upsert(rows=rows, provider="csv", origin=BarOrigin.FILE)
    (day,) = bars(user_client, "AAPL", "1d")
    # 09:00 (holds 09:30–10:00) through 15:00; 08:00 and 16:00 on are outside
    in_session = [r for r in rows if 9 <= r[2].hour <= 15]
    assert len(in_session) == 7
    assert day["v"] == float(sum(r[7] for r in in_session))
    assert len(bars(user_client, "AAPL", "1h")) == 16


def test_crypto_days_from_hours_are_utc_days(user_client, instruments):
    btc = instruments["BTC/USD"]
    start = datetime(2024, 3, 9, 22, tzinfo=UTC)
    rows = hour_rows(btc, [start + timedelta(hours=i) for i in range(28)])
    bars_upsert(rows=rows, provider="csv", origin=BarOrigin.FILE)
    daily = bars(user_client, "BTC/USD", "1d")
    assert [b["t"] for b in daily] == [
        int(datetime(2024, 3, d, tzinfo=UTC).timestamp()) for d in (9, 10, 11)
    ]
    assert [b["v"] for b in daily] == [
        float(sum(r[7] for r in rows[a:b])) for a, b in ((0, 2), (2, 26), (26, 28))
    ]


def test_verifier_ignores_stored_hours(instruments, settings):
    # History from a provider without pre- and post-market (Finnhub): the
    # regular session is what is expected of AAPL's minutes.
    settings.TAPELINE_PROVIDERS, settings.TAPELINE_PROVIDER = ["finnhub"], "finnhub"
    aapl = instruments["AAPL"]
    load(TRADINGVIEW, "AAPL")
    report = verify_instrument(instrument=aapl)
    assert report.bars == 0 and report.clean and report.stored_hourly == 21
    # A full regular session of minutes on 2024-03-08: clean, 100 % covered
    session_open = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
    bars_upsert(rows=minute_rows(aapl, session_open, 390), provider="test")
    report = verify_instrument(instrument=aapl)
    assert report.bars == 390 and report.stored_hourly == 21
    assert report.clean and report.violations == 0 and report.duplicates == 0
    assert report.coverage == 100.0 and report.outside_session == 0
    data = report.as_dict()
    assert data["stored_hourly"] == 21 and data["stored_daily"] == 0


def test_admin_bar_browser_lists_hourly_bars(client, staff_user, instruments):
    load(TRADINGVIEW, "AAPL")
    client.force_login(staff_user)
    response = client.get(
        "/admin/marketdata/instrument/bars/", {"symbol": "AAPL", "timeframe": "1h"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert '<option value="1h" selected>1 hour</option>' in body
    assert "2024-03-11 19:30" in body  # the newest stored hour (15:30 EDT), in UTC
    response = client.get("/admin/marketdata/instrument/bars/", {"symbol": "AAPL"})
    assert "2024-03-11 19:30" not in response.content.decode()  # 1m: nothing
