"""The simulator's snapshot endpoints (providers.md §6): exact shapes, and
values that agree with its other endpoints (bars, Finnhub quote, stream)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests

from simulator import prices
from tests.plugins.simulator import start_simulator

# Saturday 2025-01-04 15:00 UTC: the stock market is closed since Friday's
# 16:00 New York close; crypto trades.
SATURDAY = datetime(2025, 1, 4, 15, 0, tzinfo=UTC)
BAR_KEYS = {"t", "o", "h", "l", "c", "v", "n", "vw"}
SNAPSHOT_KEYS = {"latestTrade", "latestQuote", "minuteBar", "dailyBar", "prevDailyBar"}


@pytest.fixture
def sim():
    sim = start_simulator(hours="nyse", clock_start=SATURDAY)
    try:
        yield sim
    finally:
        sim.stop_thread()


def _alpaca(sim, path, **params):
    headers = {"APCA-API-KEY-ID": sim.key_id, "APCA-API-SECRET-KEY": sim.secret}
    return requests.get(sim.http_url + path, params=params, headers=headers, timeout=10)


def _daily_bar(sim, path, symbol, day):
    body = _alpaca(
        sim, path, symbols=symbol, timeframe="1Day", start=day, end=day
    ).json()
    (bar,) = body["bars"][symbol]
    return bar


def test_stock_snapshots_shape_and_previous_regular_close(sim):
    response = _alpaca(sim, "/v2/stocks/snapshots", symbols="AAPL,MSFT,NOPE")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"AAPL", "MSFT"}  # an unknown symbol is absent
    snap = body["AAPL"]
    assert set(snap) == SNAPSHOT_KEYS
    assert set(snap["latestTrade"]) == {"t", "x", "p", "s", "c", "i", "z"}
    assert set(snap["latestQuote"]) == {
        "t",
        "ax",
        "ap",
        "as",
        "bx",
        "bp",
        "bs",
        "c",
        "z",
    }
    assert set(snap["minuteBar"]) == set(snap["dailyBar"]) == BAR_KEYS
    assert set(snap["prevDailyBar"]) == BAR_KEYS
    # Friday's last regular trade; daily bars stamped at New York midnight.
    assert snap["latestTrade"]["t"].startswith("2025-01-03T20:59:")
    assert snap["dailyBar"]["t"] == "2025-01-03T05:00:00Z"
    assert snap["prevDailyBar"]["t"] == "2025-01-02T05:00:00Z"
    assert snap["dailyBar"]["c"] == snap["latestTrade"]["p"]
    assert snap["minuteBar"]["t"] == "2025-01-03T20:59:00Z"
    # The same bars as the bars endpoint serves for those days.
    assert snap["prevDailyBar"] == _daily_bar(
        sim, "/v2/stocks/bars", "AAPL", "2025-01-02"
    )
    friday = _daily_bar(sim, "/v2/stocks/bars", "AAPL", "2025-01-03")
    for key in ("o", "h", "l", "c", "v", "n"):
        assert snap["dailyBar"][key] == friday[key], key

    single = _alpaca(sim, "/v2/stocks/AAPL/snapshot").json()
    assert single == {"symbol": "AAPL", **snap}
    missing = _alpaca(sim, "/v2/stocks/NOPE/snapshot")
    assert missing.status_code == 404
    assert missing.json() == {"code": 40410000, "message": "no snapshot found for NOPE"}


def test_finnhub_quote_agrees_with_the_alpaca_snapshot(sim):
    snap = _alpaca(sim, "/v2/stocks/AAPL/snapshot").json()
    quote = requests.get(
        sim.http_url + "/api/v1/quote",
        params={"symbol": "AAPL", "token": sim.finnhub_token},
        timeout=10,
    ).json()
    assert quote["pc"] == snap["prevDailyBar"]["c"]
    assert quote["c"] == snap["latestTrade"]["p"]
    assert (quote["o"], quote["h"], quote["l"]) == tuple(
        snap["dailyBar"][k] for k in ("o", "h", "l")
    )
    assert quote["d"] == round(quote["c"] - quote["pc"], 2)
    assert quote["dp"] == round((quote["c"] - quote["pc"]) / quote["pc"] * 100, 4)
    friday_last_minute = int(datetime(2025, 1, 3, 20, 59, tzinfo=UTC).timestamp())
    assert friday_last_minute <= quote["t"] < friday_last_minute + 60  # seconds
    unknown = requests.get(
        sim.http_url + "/api/v1/quote",
        params={"symbol": "NOPE", "token": sim.finnhub_token},
        timeout=10,
    ).json()
    assert {k: unknown[k] for k in ("c", "h", "l", "o", "pc", "t")} == dict.fromkeys(
        ("c", "h", "l", "o", "pc", "t"), 0
    )


def test_previous_close_is_the_regular_session_with_extended_hours(sim):
    # Friday 18:30 New York: post-market trades move the price, the previous
    # close stays Thursday's 16:00 close and the daily bar Friday's session.
    sim.set_hours("extended")
    sim.clock.set(start=datetime(2025, 1, 3, 23, 30, tzinfo=UTC))
    snap = _alpaca(sim, "/v2/stocks/AAPL/snapshot").json()
    assert snap["latestTrade"]["t"].startswith("2025-01-03T23:")
    sim.set_hours("nyse")
    regular = _daily_bar(sim, "/v2/stocks/bars", "AAPL", "2025-01-02")
    friday = _daily_bar(sim, "/v2/stocks/bars", "AAPL", "2025-01-03")
    assert snap["prevDailyBar"]["c"] == regular["c"]
    assert snap["dailyBar"]["c"] == friday["c"]
    quote = requests.get(
        sim.http_url + "/api/v1/quote",
        params={"symbol": "AAPL", "token": sim.finnhub_token},
        timeout=10,
    ).json()
    assert quote["pc"] == regular["c"]


def test_crypto_snapshots_use_utc_days(sim):
    response = requests.get(
        sim.http_url + "/v1beta3/crypto/us/snapshots",
        params={"symbols": "BTC/USD,ETH/USD,NOPE/USD"},
        timeout=10,
    )
    assert response.status_code == 200  # no keys needed, as for crypto bars
    body = response.json()
    assert set(body) == {"snapshots"}
    assert set(body["snapshots"]) == {"BTC/USD", "ETH/USD"}
    snap = body["snapshots"]["BTC/USD"]
    assert set(snap) == SNAPSHOT_KEYS
    assert set(snap["latestTrade"]) == {"t", "p", "s", "i", "tks"}
    assert set(snap["latestQuote"]) == {"t", "bp", "bs", "ap", "as"}
    assert snap["dailyBar"]["t"] == "2025-01-04T00:00:00Z"
    assert snap["prevDailyBar"]["t"] == "2025-01-03T00:00:00Z"
    assert snap["prevDailyBar"] == _daily_bar(
        sim, "/v1beta3/crypto/us/bars", "BTC/USD", "2025-01-03T00:00:00Z"
    )
    # The day opens where the previous one closed; the last trade closes it so far.
    assert snap["dailyBar"]["o"] == snap["prevDailyBar"]["c"]
    assert snap["dailyBar"]["c"] == snap["latestTrade"]["p"]
    assert snap["dailyBar"]["l"] <= snap["latestTrade"]["p"] <= snap["dailyBar"]["h"]


def test_binance_ticker_24hr_single_and_list(sim):
    url = sim.http_url + "/api/v3/ticker/24hr"
    single = requests.get(url, params={"symbol": "BTCUSDT"}, timeout=10)
    assert single.status_code == 200
    assert single.headers["X-MBX-USED-WEIGHT-1M"]
    row = single.json()
    assert list(row) == [
        "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice",
        "prevClosePrice", "lastPrice", "lastQty", "bidPrice", "bidQty", "askPrice",
        "askQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume",
        "openTime", "closeTime", "firstId", "lastId", "count",
    ]  # fmt: skip
    for key in ("lastPrice", "openPrice", "volume", "priceChangePercent"):
        assert isinstance(row[key], str), key
    for key in ("openTime", "closeTime", "firstId", "lastId", "count"):
        assert isinstance(row[key], int), key
    # A rolling window: 24 h back from the current minute, not a day boundary.
    assert row["closeTime"] - row["openTime"] >= 86_400_000
    assert row["closeTime"] - row["openTime"] < 86_460_000
    last, opened = float(row["lastPrice"]), float(row["openPrice"])
    assert float(row["priceChange"]) == pytest.approx(last - opened, abs=1e-6)
    assert float(row["priceChangePercent"]) == pytest.approx(
        (last - opened) / opened * 100, abs=0.001
    )
    assert float(row["lowPrice"]) <= last <= float(row["highPrice"])
    assert float(row["bidPrice"]) < float(row["askPrice"])
    minute = prices.minute_bar("BTC/USD", row["openTime"] // 1000, seed=sim.seed)
    assert opened == float(minute.o[0])

    listed = requests.get(
        url, params={"symbols": json.dumps(["BTCUSDT", "ETHUSDT"])}, timeout=10
    )
    assert listed.status_code == 200
    assert [r["symbol"] for r in listed.json()] == ["BTCUSDT", "ETHUSDT"]

    unknown = requests.get(
        url, params={"symbols": '["BTCUSDT","NOPEUSDT"]'}, timeout=10
    )
    assert unknown.status_code == 400
    assert unknown.json() == {"code": -1121, "msg": "Invalid symbol."}
    lower = requests.get(url, params={"symbol": "btcusdt"}, timeout=10)
    assert lower.status_code == 400 and lower.json()["code"] == -1100
    both = requests.get(
        url, params={"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, timeout=10
    )
    assert both.status_code == 400 and both.json()["code"] == -1128


def test_snapshot_endpoints_keep_rest_faults_and_auth(sim):
    assert _alpaca(sim, "/v2/stocks/snapshots", symbols="AAPL").status_code == 200
    unauthorized = requests.get(
        sim.http_url + "/v2/stocks/snapshots", params={"symbols": "AAPL"}, timeout=10
    )
    assert unauthorized.status_code == 403
    sim.faults.update(rest_429_rate=1.0, retry_after=3)
    limited = _alpaca(sim, "/v2/stocks/snapshots", symbols="AAPL")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.json()["code"] == 42910000
    binance = requests.get(
        sim.http_url + "/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"}, timeout=10
    )
    assert binance.status_code == 429 and binance.json()["code"] == -1003
    sim.faults.update(rest_429_rate=0.0, rest_500_rate=1.0)
    failed = requests.get(
        sim.http_url + "/v1beta3/crypto/us/snapshots",
        params={"symbols": "BTC/USD"},
        timeout=10,
    )
    assert failed.status_code == 500
