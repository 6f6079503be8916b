"""Binance streams and klines REST as served by the simulator."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import requests
import websockets

from simulator import prices
from tests.simulator.helpers import collect, recv_json


def test_raw_trade_stream_payload(simulator):
    simulator.clock.set(speed=10)

    async def script(ws):
        return [await recv_json(ws) for _ in range(3)]

    trades = collect(simulator.ws_url + "/ws/btcusdt@trade", script)
    for trade in trades:
        assert set(trade) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
        assert trade["e"] == "trade" and trade["s"] == "BTCUSDT"
        assert isinstance(trade["p"], str) and len(trade["p"].split(".")[1]) == 8
        minute = trade["T"] // 60000 * 60
        ticks = prices.minute_ticks("BTC/USD", minute, seed=simulator.seed)
        index = list(ticks.trade_id).index(trade["t"])
        assert float(trade["p"]) == ticks.price[index]
        assert float(trade["q"]) == ticks.size[index]
        assert trade["m"] is (not ticks.buy[index])


def test_combined_streams_live_control_and_lowercase_only(simulator):
    simulator.clock.set(speed=10)

    async def script(ws):
        replies = []
        await ws.send(
            json.dumps(
                {
                    "method": "SUBSCRIBE",
                    "params": ["ethusdt@trade", "BTCUSDT@trade"],
                    "id": 1,
                }
            )
        )
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "abc"}))
        await asyncio.sleep(1.1)  # stay under 5 messages per second
        await ws.send(
            json.dumps(
                {"method": "UNSUBSCRIBE", "params": ["solusdt@bookTicker"], "id": 2}
            )
        )
        await ws.send("{oops")
        await ws.send(json.dumps({"method": "FLY", "id": 3}))
        await asyncio.sleep(1.1)
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": {"x": 1}}))
        data = []
        while (
            len(replies) < 6
            or len([d for d in data if d["stream"] == "ethusdt@trade"]) < 4
        ):
            message = await recv_json(ws)
            (data if "stream" in message else replies).append(message)
        return replies, data

    replies, data = collect(
        simulator.ws_url + "/stream?streams=solusdt@bookTicker", script, timeout=40
    )
    assert replies[0] == {"result": None, "id": 1}
    assert replies[1] == {
        "result": ["solusdt@bookTicker", "ethusdt@trade", "BTCUSDT@trade"],
        "id": "abc",
    }
    assert replies[2] == {"result": None, "id": 2}
    assert replies[3]["error"]["code"] == 3 and replies[3]["id"] is None
    assert replies[4]["error"]["code"] == 2 and replies[4]["id"] == 3
    assert replies[5]["error"]["code"] == 2
    streams = {d["stream"] for d in data}
    assert "BTCUSDT@trade" not in streams  # upper case subscribes but never delivers
    assert streams <= {"ethusdt@trade", "solusdt@bookTicker"}
    assert all(
        d["data"]["s"] == "ETHUSDT" for d in data if d["stream"] == "ethusdt@trade"
    )


def test_more_than_five_messages_a_second_closes_with_1008(simulator):
    async def script(ws):
        for i in range(8):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        with pytest.raises(websockets.ConnectionClosed) as excinfo:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        return excinfo.value.rcvd.code

    assert collect(simulator.ws_url + "/ws/btcusdt@trade", script) == 1008


def test_kline_pushes_grow_into_the_closed_candle_and_match_rest(simulator):
    simulator.clock.set(speed=10)

    async def script(ws):
        events = []
        while not any(e["k"]["x"] for e in events[1:]):
            events.append(await recv_json(ws, timeout=15))
        return events

    events = collect(simulator.ws_url + "/ws/ethusdt@kline_1m", script, timeout=40)
    final = next(e["k"] for e in events[1:] if e["k"]["x"])
    partials = [e["k"] for e in events if e["k"]["t"] == final["t"] and not e["k"]["x"]]
    assert partials, "the forming candle was pushed before it closed"
    counts = [k["n"] for k in partials] + [final["n"]]
    assert counts == sorted(counts)
    assert (
        final["T"] == final["t"] + 59_999
        and final["i"] == "1m"
        and final["s"] == "ETHUSDT"
    )
    row = requests.get(
        simulator.http_url + "/api/v3/klines",
        params={
            "symbol": "ETHUSDT",
            "interval": "1m",
            "startTime": final["t"],
            "limit": 1,
        },
        timeout=10,
    ).json()[0]
    assert row[:9] == [
        final["t"],
        final["o"],
        final["h"],
        final["l"],
        final["c"],
        final["v"],
        final["T"],
        final["q"],
        final["n"],
    ]


def test_klines_paging_by_start_time(simulator):
    start_ms = 1704067200000  # 2024-01-01
    rows = []
    cursor = start_ms
    while len(rows) < 2500:
        page = requests.get(
            simulator.http_url + "/api/v3/klines",
            params={
                "symbol": "SOLUSDT",
                "interval": "1m",
                "startTime": cursor,
                "limit": 5000,
            },
            timeout=10,
        )
        assert "X-MBX-USED-WEIGHT-1M" in page.headers
        body = page.json()
        assert len(body) == 1000  # limit is capped at 1000
        rows.extend(body)
        cursor = body[-1][0] + 60_000
    opens = [r[0] for r in rows]
    assert opens == list(range(start_ms, start_ms + len(rows) * 60_000, 60_000))
    truth = prices.minute_bars(
        "SOL/USD",
        start_ms // 1000,
        start_ms // 1000 + len(rows) * 60,
        seed=simulator.seed,
    )
    assert [float(r[4]) for r in rows] == truth.c.tolist()
    assert [r[8] for r in rows] == truth.n.tolist()


def test_klines_without_range_end_with_the_forming_candle(simulator):
    body = requests.get(
        simulator.http_url + "/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "5m", "limit": 3},
        timeout=10,
    ).json()
    assert len(body) == 3
    assert body[1][0] - body[0][0] == 300_000
    assert body[-1][6] > time.time() * 1000  # still open
    newest = requests.get(
        simulator.http_url + "/api/v3/klines",
        params={
            "symbol": "BTCUSDT",
            "interval": "1d",
            "endTime": 1704153600000,
            "limit": 2,
        },
        timeout=10,
    ).json()
    assert [r[0] for r in newest] == [1704067200000, 1704153600000]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"interval": "1m"}, -1102),
        ({"symbol": "btcusdt", "interval": "1m"}, -1100),
        ({"symbol": "AAPL", "interval": "1m"}, -1121),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "startTime": 20, "endTime": 10},
            -1023,
        ),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "soon"}, -1100),
    ],
)
def test_klines_errors(simulator, params, code):
    response = requests.get(
        simulator.http_url + "/api/v3/klines", params=params, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_injected_429_carries_retry_after(simulator):
    simulator.faults.update(rest_429_rate=1.0, retry_after=2)
    response = requests.get(
        simulator.http_url + "/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m"},
        timeout=10,
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2" and response.json()["code"] == -1003


def test_server_pings_and_drops_clients_that_never_pong(simulator):
    simulator.binance_ping_interval = 0.3
    simulator.binance_pong_timeout = 1.5

    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(
                simulator.ws_url + "/ws/btcusdt@bookTicker", autoping=False
            ) as ws:
                kinds = []
                async for msg in ws:
                    kinds.append(msg.type)
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        break
                return kinds, ws.close_code

    kinds, code = asyncio.run(asyncio.wait_for(main(), 20))
    assert aiohttp.WSMsgType.PING in kinds
    assert code == 1008
