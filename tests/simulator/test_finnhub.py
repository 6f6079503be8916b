"""Finnhub stream and REST as served by the simulator."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
import websockets

from simulator import prices
from tests.plugins.simulator import trading_soon
from tests.simulator.helpers import collect, recv_json


def _url(sim, token=None):
    return f"{sim.ws_url}/?token={token or sim.finnhub_token}"


def test_bad_token_is_refused_with_http_401(simulator):
    async def main():
        async with websockets.connect(_url(simulator, "sandbox_nope"), open_timeout=5):
            pass

    with pytest.raises(websockets.InvalidStatus) as excinfo:
        asyncio.run(main())
    assert excinfo.value.response.status_code == 401


def test_trade_batches_with_millisecond_times_match_the_minute_ticks(simulator):
    simulator.finnhub_ping_interval = 0.5
    simulator.clock.set(start=trading_soon("AAPL", "BTC/USD"))

    async def script(ws):
        await ws.send(json.dumps({"type": "subscribe", "symbol": "AAPL"}))
        await ws.send(json.dumps({"type": "subscribe", "symbol": "BINANCE:BTCUSDT"}))
        frames = []
        while sum(len(f.get("data", [])) for f in frames) < 8 or not any(
            f["type"] == "ping" for f in frames
        ):
            frames.append(await recv_json(ws))
        return frames

    frames = collect(_url(simulator), script, timeout=40)
    assert {"type": "ping"} in frames
    trades = [t for f in frames if f["type"] == "trade" for t in f["data"]]
    assert {t["s"] for t in trades} <= {"AAPL", "BINANCE:BTCUSDT"}
    for trade in trades:
        symbol = "BTC/USD" if trade["s"] == "BINANCE:BTCUSDT" else "AAPL"
        ticks = prices.minute_ticks(
            symbol, trade["t"] // 60000 * 60, seed=simulator.seed
        )
        matching = [
            (p, s)
            for p, s, off in zip(ticks.price, ticks.size, ticks.offset_ns, strict=True)
            if (trade["t"] // 60000 * 60_000_000_000 + off) // 1_000_000 == trade["t"]
        ]
        assert (trade["p"], trade["v"]) in matching
        if symbol == "AAPL":
            assert trade["c"] == ["1"] and isinstance(trade["v"], int)
        else:
            assert "c" not in trade


def test_unsubscribe_stops_a_symbol_and_symbol_limit_errors(simulator):
    simulator.clock.set(speed=10)
    simulator.faults.update(symbol_caps={"finnhub": 50})

    async def script(ws):
        await ws.send(json.dumps({"type": "subscribe", "symbol": "BINANCE:ETHUSDT"}))
        await ws.send(json.dumps({"type": "unsubscribe", "symbol": "BINANCE:ETHUSDT"}))
        await ws.send(json.dumps({"type": "subscribe", "symbol": "BINANCE:SOLUSDT"}))
        for i in range(60):
            await ws.send(json.dumps({"type": "subscribe", "symbol": f"X{i}"}))
        frames = []
        while sum(len(f.get("data", [])) for f in frames if f["type"] == "trade") < 5:
            frames.append(await recv_json(ws))
        return frames

    frames = collect(_url(simulator), script, timeout=40)
    errors = [i for i, f in enumerate(frames) if f["type"] == "error"]
    assert errors and frames[errors[0]]["msg"] == "Subscribing to too many symbols"
    # Data may trail an unsubscribe briefly; after the error reply (sent once
    # every message was handled) only the still-subscribed symbol arrives.
    later = frames[errors[0] :]
    symbols = {t["s"] for f in later if f["type"] == "trade" for t in f["data"]}
    assert symbols == {"BINANCE:SOLUSDT"}


def test_rest_quote_search_and_candles(simulator):
    base = simulator.http_url + "/api/v1"
    token = {"token": simulator.finnhub_token}
    quote = requests.get(
        base + "/quote", params={"symbol": "MSFT", **token}, timeout=10
    ).json()
    assert set(quote) == {"c", "d", "dp", "h", "l", "o", "pc", "t"}
    assert quote["l"] <= quote["c"] <= quote["h"]
    assert quote["d"] == pytest.approx(quote["c"] - quote["pc"], abs=0.011)
    assert 10**9 < quote["t"] < 10**10  # seconds, unlike stream milliseconds
    zero = requests.get(
        base + "/quote", params={"symbol": "NOPE", **token}, timeout=10
    ).json()
    assert zero == {
        "c": 0,
        "d": None,
        "dp": None,
        "h": 0,
        "l": 0,
        "o": 0,
        "pc": 0,
        "t": 0,
    }
    by_header = requests.get(
        base + "/quote",
        params={"symbol": "MSFT"},
        headers={"X-Finnhub-Token": simulator.finnhub_token},
        timeout=10,
    )
    assert by_header.status_code == 200
    bad = requests.get(
        base + "/quote", params={"symbol": "MSFT", "token": "x"}, timeout=10
    )
    assert (bad.status_code, bad.json()) == (401, {"error": "Invalid API key"})
    found = requests.get(
        base + "/search", params={"q": "bitcoin", **token}, timeout=10
    ).json()
    assert found["count"] == 1 and found["result"][0]["symbol"] == "BINANCE:BTCUSDT"
    candle = requests.get(
        base + "/stock/candle",
        params={
            "symbol": "AAPL",
            "resolution": "60",
            "from": 1709510400,
            "to": 1709521200,
            **token,
        },
        timeout=10,
    ).json()
    assert candle["s"] == "ok" and candle["t"] == [
        1709510400,
        1709514000,
        1709517600,
        1709521200,
    ]
    hourly = prices.bars(
        "AAPL", 1709510400, 1709521200 + 3600, seed=simulator.seed, unit="hour"
    )
    assert candle["c"] == hourly.c.tolist()
    empty = requests.get(
        base + "/stock/candle",
        params={"symbol": "NOPE", "resolution": "D", "from": 1, "to": 2, **token},
        timeout=10,
    ).json()
    assert empty == {"s": "no_data"}


def test_connection_limit_refuses_a_second_socket(simulator):
    simulator.faults.connection_limit = True

    async def main():
        async with websockets.connect(_url(simulator), open_timeout=5):
            with pytest.raises(websockets.InvalidStatus) as excinfo:
                async with websockets.connect(_url(simulator), open_timeout=5):
                    pass
            return excinfo.value.response.status_code

    assert asyncio.run(main()) == 429
