"""Alpaca stream protocol fidelity over real sockets (plain websockets client)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime

import msgpack
import pytest
import requests
import websockets

from simulator import prices
from simulator.tape import parse_time_ns
from tests.plugins.simulator import trading_soon
from tests.simulator.helpers import (
    alpaca_login,
    collect,
    recv_json,
    recv_msgpack,
)

RFC3339_NS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def test_session_errors_and_full_subscription_frames(simulator):
    async def script(ws):
        out = [await recv_json(ws)]
        await ws.send(json.dumps({"action": "subscribe", "trades": ["AAPL"]}))
        out.append(await recv_json(ws))
        await ws.send("{not json")
        out.append(await recv_json(ws))
        await ws.send(
            json.dumps(
                {"action": "auth", "key": simulator.key_id, "secret": simulator.secret}
            )
        )
        out.append(await recv_json(ws))
        await ws.send(
            json.dumps(
                {"action": "auth", "key": simulator.key_id, "secret": simulator.secret}
            )
        )
        out.append(await recv_json(ws))
        await ws.send(
            json.dumps(
                {"action": "subscribe", "trades": ["AAPL", "MSFT"], "bars": ["*"]}
            )
        )
        out.append(await recv_json(ws))
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["AMD"]}))
        out.append(await recv_json(ws))
        await ws.send(
            json.dumps({"action": "unsubscribe", "trades": ["MSFT"], "bars": ["*"]})
        )
        out.append(await recv_json(ws))
        await ws.send(json.dumps({"action": "subscribe", "orderbooks": ["AAPL"]}))
        out.append(await recv_json(ws))
        return out

    frames = collect(simulator.ws_url + "/v2/iex", script)
    assert frames[0] == [{"T": "success", "msg": "connected"}]
    assert frames[1] == [{"T": "error", "code": 401, "msg": "not authenticated"}]
    assert frames[2] == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
    assert frames[3] == [{"T": "success", "msg": "authenticated"}]
    assert frames[4] == [{"T": "error", "code": 403, "msg": "already authenticated"}]
    assert frames[5] == [
        {
            "T": "subscription",
            "trades": ["AAPL", "MSFT"],
            "quotes": [],
            "bars": ["*"],
            "updatedBars": [],
            "dailyBars": [],
            "statuses": [],
            "lulds": [],
            "corrections": ["AAPL", "MSFT"],
            "cancelErrors": ["AAPL", "MSFT"],
        }
    ]
    assert frames[6][0]["quotes"] == ["AMD"] and frames[6][0]["trades"] == [
        "AAPL",
        "MSFT",
    ]
    assert frames[7][0]["trades"] == ["AAPL"] and frames[7][0]["bars"] == []
    assert frames[7][0]["corrections"] == ["AAPL"] and frames[7][0]["quotes"] == ["AMD"]
    assert frames[8] == [
        {"T": "error", "code": 410, "msg": "invalid subscribe action for this feed"}
    ]


def test_wrong_keys_get_402_and_the_connection_closes(simulator):
    async def script(ws):
        await recv_json(ws)
        await ws.send(json.dumps({"action": "auth", "key": "nope", "secret": "nope"}))
        reply = await recv_json(ws)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return reply

    assert collect(simulator.ws_url + "/v2/sip", script) == [
        {"T": "error", "code": 402, "msg": "auth failed"}
    ]


def test_auth_timeout_is_404(simulator):
    simulator.auth_timeout = 0.5

    async def script(ws):
        await recv_json(ws)
        reply = await recv_json(ws, timeout=5)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return reply

    assert collect(simulator.ws_url + "/v2/iex", script) == [
        {"T": "error", "code": 404, "msg": "auth timeout"}
    ]


def test_upgrade_headers_authenticate(simulator):
    headers = {
        "APCA-API-KEY-ID": simulator.key_id,
        "APCA-API-SECRET-KEY": simulator.secret,
    }

    async def script(ws):
        return [await recv_json(ws), await recv_json(ws)]

    frames = collect(simulator.ws_url + "/v2/iex", script, additional_headers=headers)
    assert frames == [
        [{"T": "success", "msg": "connected"}],
        [{"T": "success", "msg": "authenticated"}],
    ]


def test_connection_limit_refuses_a_second_session_with_406(simulator):
    simulator.faults.connection_limit = True

    async def main():
        async with websockets.connect(simulator.ws_url + "/v2/iex") as first:
            await alpaca_login(first, simulator)
            async with websockets.connect(simulator.ws_url + "/v2/iex") as second:
                await recv_json(second)
                await second.send(
                    json.dumps(
                        {
                            "action": "auth",
                            "key": simulator.key_id,
                            "secret": simulator.secret,
                        }
                    )
                )
                refused = await recv_json(second)
            # the crypto stream is a separate slot
            async with websockets.connect(
                simulator.ws_url + "/v1beta3/crypto/us"
            ) as crypto:
                await alpaca_login(crypto, simulator)
        # once the first one is gone a new session is accepted again
        await asyncio.sleep(0.3)
        async with websockets.connect(simulator.ws_url + "/v2/iex") as third:
            await alpaca_login(third, simulator)
        return refused

    assert asyncio.run(main()) == [
        {"T": "error", "code": 406, "msg": "connection limit exceeded"}
    ]


def test_trades_and_quotes_are_batched_with_nanosecond_timestamps(simulator):
    simulator.faults.update()  # defaults

    async def script(ws):
        await alpaca_login(ws, simulator)
        await ws.send(
            json.dumps(
                {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AAPL", "MSFT"]}
            )
        )
        await recv_json(ws)
        messages = []
        while len(messages) < 40:
            messages.extend(await recv_json(ws))
        return messages

    messages = collect(simulator.ws_url + "/v2/iex", script)
    kinds = {m["T"] for m in messages}
    assert kinds <= {"t", "q"} and "q" in kinds
    for m in messages:
        assert RFC3339_NS.match(m["t"]), m["t"]
        if m["T"] == "q":
            assert m["S"] in {"AAPL", "MSFT"} and m["ap"] > m["bp"] > 0
            assert set(m) == {
                "T",
                "S",
                "bx",
                "bp",
                "bs",
                "ax",
                "ap",
                "as",
                "c",
                "z",
                "t",
            }
        else:
            assert (
                m["S"] == "AAPL" and m["x"] == "V" and m["c"] == ["@"] and m["z"] == "C"
            )
            assert set(m) == {"T", "S", "i", "x", "p", "s", "c", "z", "t"}
    assert any(len(m["t"]) > 25 for m in messages)  # nanosecond digits present


def test_msgpack_session_round_trip(simulator):
    simulator.clock.set(start=trading_soon("BTC/USD"))

    async def script(ws):
        out = [await recv_msgpack(ws)]
        await ws.send(
            msgpack.packb(
                {"action": "auth", "key": simulator.key_id, "secret": simulator.secret}
            )
        )
        out.append(await recv_msgpack(ws))
        await ws.send(
            msgpack.packb(
                {"action": "subscribe", "trades": ["BTC/USD"], "quotes": ["ETH/USD"]}
            )
        )
        out.append(await recv_msgpack(ws))
        data = []
        while not {"t", "q"} <= {m["T"] for m in data}:
            raw = await asyncio.wait_for(ws.recv(), 30)  # a loaded machine
            assert isinstance(raw, bytes)
            data.extend(msgpack.unpackb(raw))
        out.append(data)
        return out

    frames = collect(
        simulator.ws_url + "/v1beta3/crypto/us",
        script,
        timeout=60,
        additional_headers={"Content-Type": "application/msgpack"},
    )
    assert frames[0] == [{"T": "success", "msg": "connected"}]
    assert frames[1] == [{"T": "success", "msg": "authenticated"}]
    assert frames[2] == [
        {
            "T": "subscription",
            "trades": ["BTC/USD"],
            "quotes": ["ETH/USD"],
            "orderbooks": [],
            "bars": [],
            "updatedBars": [],
            "dailyBars": [],
        }
    ]
    for m in frames[3]:
        assert isinstance(m["t"], msgpack.Timestamp)
        if m["T"] == "t":
            assert (
                m["S"] == "BTC/USD"
                and m["tks"] in {"B", "S"}
                and isinstance(m["s"], float)
            )
        else:
            assert m["S"] == "ETH/USD" and m["ap"] > m["bp"]


def test_test_feed_serves_fakepaca_and_delayed_sip_is_15_minutes_late(simulator):
    async def one_trade(ws, symbol):
        await alpaca_login(ws, simulator)
        await ws.send(
            json.dumps({"action": "subscribe", "trades": [symbol], "quotes": [symbol]})
        )
        await recv_json(ws)
        return (await recv_json(ws))[0]

    fake = collect(simulator.ws_url + "/v2/test", lambda ws: one_trade(ws, "FAKEPACA"))
    assert fake["S"] == "FAKEPACA"
    delayed = collect(
        simulator.ws_url + "/v2/delayed_sip", lambda ws: one_trade(ws, "AAPL")
    )
    lag = datetime.now(UTC).timestamp() - parse_time_ns(delayed["t"]) / 1e9
    assert 14 * 60 < lag < 16 * 60


def test_live_minute_equals_rest_minute(simulator):
    """Aggregating one streamed minute's trades gives the bar message and the
    REST bar of that minute exactly."""
    simulator.clock.set(speed=20)
    symbol = "AAPL"

    async def script(ws):
        await alpaca_login(ws, simulator)
        await ws.send(
            json.dumps({"action": "subscribe", "trades": [symbol], "bars": [symbol]})
        )
        await recv_json(ws)
        target = (simulator.now_ns() // 60_000_000_000 + 1) * 60
        trades, bar = [], None
        while bar is None:
            for m in await recv_json(ws, timeout=15):
                t = parse_time_ns(m["t"]) // 1_000_000_000
                if m["T"] == "t" and target <= t < target + 60:
                    trades.append(m)
                if m["T"] == "b" and t == target:
                    bar = m
        return target, trades, bar

    target, trades, bar = collect(simulator.ws_url + "/v2/sip", script, timeout=30)
    volume = sum(t["s"] for t in trades)
    aggregated = {
        "o": trades[0]["p"],
        "h": max(t["p"] for t in trades),
        "l": min(t["p"] for t in trades),
        "c": trades[-1]["p"],
        "v": volume,
        "n": len(trades),
    }
    assert aggregated == {k: bar[k] for k in aggregated}
    assert sum(t["p"] * t["s"] for t in trades) / volume == pytest.approx(
        bar["vw"], abs=1e-6
    )
    stamp = datetime.fromtimestamp(target, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rest = requests.get(
        simulator.http_url + f"/v2/stocks/{symbol}/bars",
        params={"timeframe": "1Min", "start": stamp, "end": stamp},
        headers={
            "APCA-API-KEY-ID": simulator.key_id,
            "APCA-API-SECRET-KEY": simulator.secret,
        },
        timeout=10,
    ).json()
    assert rest["bars"] == [
        {k: bar[k] for k in ("t", "o", "h", "l", "c", "v", "n", "vw")}
    ]
    truth = prices.minute_bar(symbol, target, seed=simulator.seed)
    assert bar["c"] == truth.c[0]


def test_wildcard_bars_cover_the_feed(simulator):
    simulator.clock.set(speed=30)

    async def script(ws):
        await alpaca_login(ws, simulator)
        await ws.send(json.dumps({"action": "subscribe", "bars": ["*"]}))
        await recv_json(ws)
        return await recv_json(ws, timeout=10)

    batch = collect(simulator.ws_url + "/v2/iex", script)
    symbols = {m["S"] for m in batch if m["T"] == "b"}
    assert {"AAPL", "SPY", "BRK.B"} <= symbols and "BTC/USD" not in symbols


@pytest.mark.parametrize(
    ("symbol", "crypto", "iex"),
    [
        ("AAPL", False, True),
        ("BRK.B", False, False),
        ("BTC/USD", True, False),
        ("DOGE/USD", True, False),
    ],
)
def test_json_and_msgpack_encodings_carry_the_same_messages(symbol, crypto, iex):
    from simulator.alpaca_frames import encode
    from simulator.session import TickContext
    from simulator.tape import NS, Tape

    tape = Tape(seed=9, hours="always", rate=50)
    start = int(datetime(2025, 2, 3, 15, tzinfo=UTC).timestamp()) * NS
    ctx = TickContext(tape, start, start + 30 * NS)
    window = ctx.window(symbol)
    for kind in ("t", "q"):
        text = [
            json.loads(f)
            for f in encode(kind, window, symbol, (False, iex, crypto), ctx)
        ]
        packed = [
            msgpack.unpackb(f)
            for f in encode(kind, window, symbol, (True, iex, crypto), ctx)
        ]
        assert text and len(text) == len(packed)
        for as_json, as_msgpack in zip(text, packed, strict=True):
            assert parse_time_ns(as_json.pop("t")) == as_msgpack.pop("t").to_unix_nano()
            assert as_json == as_msgpack


def test_updated_bars_resend_a_closed_minute_unchanged(simulator):
    simulator.clock.set(speed=30)

    async def script(ws):
        await alpaca_login(ws, simulator)
        await ws.send(
            json.dumps({"action": "subscribe", "bars": ["*"], "updatedBars": ["*"]})
        )
        await recv_json(ws)
        bars, updated = {}, []
        while len(updated) < 3:
            for m in await recv_json(ws, timeout=15):
                if m["T"] == "b":
                    bars[(m["S"], m["t"])] = m
                elif m["T"] == "u":
                    updated.append(m)
        return bars, updated

    bars, updated = collect(simulator.ws_url + "/v2/iex", script, timeout=40)
    for message in updated:
        minute = parse_time_ns(message["t"]) // 1_000_000_000
        truth = prices.minute_bar(message["S"], minute, seed=simulator.seed)
        assert (message["o"], message["c"], message["n"]) == (
            truth.o[0],
            truth.c[0],
            truth.n[0],
        )
        original = bars.get((message["S"], message["t"]))
        if original is not None:  # sent as a bar earlier in this session
            assert {**original, "T": "u"} == message
