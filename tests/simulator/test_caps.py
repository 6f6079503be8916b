"""Per-protocol symbol caps: each provider's own refusal, and what stays subscribed.

Caps are set the three supported ways: `Simulator(symbol_caps=...)`, the
in-process `faults.update(symbol_caps=...)` and `POST /_sim/faults`. Refusals
are also parsed by our provider adapters, which must call them plan limits.
"""

from __future__ import annotations

import asyncio
import json

import orjson
import requests

from marketdata.events import Control, ControlType
from marketdata.providers.alpaca import AlpacaProvider
from marketdata.providers.binance import BinanceProvider
from marketdata.providers.finnhub import FinnhubProvider
from tests.plugins.simulator import start_simulator, trading_soon
from tests.simulator.helpers import alpaca_login, collect, recv_json

LIMIT_405 = [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]
FINNHUB_TOO_MANY = {"type": "error", "msg": "Subscribing to too many symbols"}


def _send(ws, **message):
    return ws.send(json.dumps(message))


def test_no_caps_by_default_except_binance_streams(simulator):
    simulator.clock.set(start=trading_soon("AAPL"))
    faults = requests.get(simulator.http_url + "/_sim/faults", timeout=5).json()
    caps = {p: v["symbol_cap"] for p, v in faults["effective"].items()}
    assert caps == {"alpaca": None, "finnhub": None, "binance": 1024}

    async def script(ws):
        for i in range(60):  # more than Finnhub's free plan allows
            await _send(ws, type="subscribe", symbol=f"X{i}")
        await _send(ws, type="subscribe", symbol="AAPL")
        while True:  # trades of the 61st symbol arrive; no error before them
            frame = await recv_json(ws)
            assert frame["type"] != "error", frame
            if any(t["s"] == "AAPL" for t in frame.get("data", [])):
                return

    collect(f"{simulator.ws_url}/?token={simulator.finnhub_token}", script)


def test_alpaca_cap_counts_trades_and_quotes_and_refuses_with_405():
    sim = start_simulator(symbol_caps={"alpaca": 3})
    try:

        async def script(ws):
            await alpaca_login(ws, sim)
            await _send(ws, action="subscribe", trades=["BTC/USD"], quotes=["ETH/USD"])
            first = await recv_json(ws)
            # Bars are unlimited on the plan: eight symbols pass a cap of 3.
            await _send(ws, action="subscribe", bars=["*"], dailyBars=["SOL/USD"])
            with_bars = await recv_json(ws)
            # Two new symbols would make four: refused as a whole.
            await _send(ws, action="subscribe", trades=["SOL/USD"], quotes=["LTC/USD"])
            refused = await recv_json(ws)
            await _send(ws, action="subscribe", trades=["*"])
            wildcard = await recv_json(ws)
            # A symbol already counted and one new one: three, accepted.
            await _send(ws, action="subscribe", trades=["ETH/USD"], quotes=["SOL/USD"])
            third = await recv_json(ws)
            data = []
            while len(data) < 20:
                frame = await recv_json(ws)
                data.extend(m for m in frame if m["T"] in ("t", "q"))
            return first, with_bars, refused, wildcard, third, data

        first, with_bars, refused, wildcard, third, data = collect(
            sim.ws_url + "/v1beta3/crypto/us", script, timeout=40
        )
    finally:
        sim.stop_thread()
    assert (first[0]["trades"], first[0]["quotes"]) == (["BTC/USD"], ["ETH/USD"])
    assert with_bars[0]["bars"] == ["*"] and with_bars[0]["trades"] == ["BTC/USD"]
    assert refused == LIMIT_405 and wildcard == LIMIT_405
    # The refused requests changed nothing: the next ack adds only its own.
    assert third[0]["trades"] == ["BTC/USD", "ETH/USD"]
    assert third[0]["quotes"] == ["ETH/USD", "SOL/USD"]
    assert {m["S"] for m in data} <= {"BTC/USD", "ETH/USD", "SOL/USD"}
    assert not any(m["S"] == "SOL/USD" and m["T"] == "t" for m in data)
    (control,) = AlpacaProvider(key_id="k", secret="s").parse_frame(
        orjson.dumps(refused)
    )
    assert control.type is ControlType.SUBSCRIPTION_ERROR
    assert (control.code, control.reason) == (405, Control.PLAN_LIMIT)


def test_alpaca_stock_cap_set_at_run_time_unsubscribe_frees_room(simulator):
    response = requests.post(
        simulator.http_url + "/_sim/faults",
        json={"symbol_caps": {"alpaca": 2}},
        timeout=5,
    )
    assert response.json()["effective"]["alpaca"]["symbol_cap"] == 2

    async def script(ws):
        await alpaca_login(ws, simulator)
        await _send(ws, action="subscribe", trades=["AAPL", "MSFT"])
        acks = [await recv_json(ws)]
        await _send(ws, action="subscribe", quotes=["NVDA"])
        acks.append(await recv_json(ws))
        await _send(ws, action="unsubscribe", trades=["MSFT"])
        acks.append(await recv_json(ws))
        await _send(ws, action="subscribe", quotes=["NVDA"])
        acks.append(await recv_json(ws))
        return acks

    acks = collect(simulator.ws_url + "/v2/iex", script)
    assert acks[0][0]["trades"] == ["AAPL", "MSFT"]
    assert acks[1] == LIMIT_405
    assert acks[2][0]["trades"] == ["AAPL"]
    assert acks[3][0]["T"] == "subscription" and acks[3][0]["quotes"] == ["NVDA"]


def test_finnhub_cap_refuses_each_further_symbol_and_earlier_ones_stream(simulator):
    simulator.faults.update(symbol_caps={"finnhub": 2})
    simulator.clock.set(speed=5, start=trading_soon("AAPL", "BTC/USD"))

    async def script(ws):
        await _send(ws, type="subscribe", symbol="AAPL")
        await _send(ws, type="subscribe", symbol="BINANCE:BTCUSDT")
        await _send(ws, type="subscribe", symbol="MSFT")
        await _send(ws, type="subscribe", symbol="NVDA")
        await _send(ws, type="subscribe", symbol="AAPL")  # already in: no error
        frames = []
        errors = 0
        streamed: set[str] = set()
        while errors < 2 or streamed != {"AAPL", "BINANCE:BTCUSDT"}:
            frame = await recv_json(ws)
            frames.append(frame)
            if frame["type"] == "error":
                errors += 1
            elif errors == 2:
                streamed |= {t["s"] for t in frame.get("data", [])}
        # Room freed by an unsubscribe takes the next symbol.
        await _send(ws, type="unsubscribe", symbol="AAPL")
        await _send(ws, type="subscribe", symbol="MSFT")
        later = []
        while not any(t["s"] == "MSFT" for f in later for t in f.get("data", [])):
            later.append(await recv_json(ws))
        return frames, later

    frames, later = collect(
        f"{simulator.ws_url}/?token={simulator.finnhub_token}", script, timeout=40
    )
    errors = [f for f in frames if f["type"] == "error"]
    assert errors == [FINNHUB_TOO_MANY, FINNHUB_TOO_MANY]
    symbols = {t["s"] for f in frames for t in f.get("data", [])}
    assert symbols == {"AAPL", "BINANCE:BTCUSDT"}  # MSFT, NVDA never streamed
    assert not any(f["type"] == "error" for f in later)
    provider = FinnhubProvider(token="t", symbols={"BTC/USD": "BINANCE:BTCUSDT"})
    provider.subscribe_messages(["AAPL", "BTC/USD", "MSFT", "NVDA"])
    (control,) = provider.parse_frame(orjson.dumps(errors[0]))
    assert control.type is ControlType.SUBSCRIPTION_ERROR
    assert control.reason == Control.PLAN_LIMIT and control.symbols == ()


def test_binance_stream_cap_answers_the_nested_error_and_changes_nothing(simulator):
    simulator.faults.update(symbol_caps={"binance": 4})

    async def script(ws):
        replies = []

        async def request(**message):
            await _send(ws, **message)
            while True:
                reply = await recv_json(ws)
                if "stream" not in reply:
                    replies.append(reply)
                    return

        too_many = ["solusdt@trade", "xrpusdt@trade", "ltcusdt@trade"]
        await request(method="SUBSCRIBE", params=too_many, id=1)
        await request(method="LIST_SUBSCRIPTIONS", id=2)
        await request(method="SUBSCRIBE", params=too_many[:2], id=3)
        await asyncio.sleep(1.1)  # at most 5 messages a second
        await request(method="SUBSCRIBE", params=["dogeusdt@trade"], id=4)
        await request(method="LIST_SUBSCRIPTIONS", id=5)
        return replies

    replies = collect(
        simulator.ws_url + "/stream?streams=btcusdt@trade/ethusdt@trade",
        script,
        timeout=30,
    )
    error = {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": 1}
    assert replies[0] == error
    assert replies[1] == {"result": ["btcusdt@trade", "ethusdt@trade"], "id": 2}
    assert replies[2] == {"result": None, "id": 3}
    assert replies[3]["error"]["code"] == 4 and replies[3]["id"] == 4
    assert replies[4]["result"] == [
        "btcusdt@trade",
        "ethusdt@trade",
        "solusdt@trade",
        "xrpusdt@trade",
    ]
    provider = BinanceProvider(symbols={"SOL/USD": "SOLUSDT"})
    provider.subscribe_messages(["SOL/USD"])  # id 1, as in the refused request
    (control,) = provider.parse_frame(orjson.dumps(error))
    assert control.type is ControlType.SUBSCRIPTION_ERROR
    assert control.reason == Control.PLAN_LIMIT and control.symbols == ("SOL/USD",)


def test_binance_default_cap_is_1024_streams(simulator):
    async def script(ws):
        names = [f"sym{i}usdt@trade" for i in range(1023)]
        await _send(ws, method="SUBSCRIBE", params=names, id=1)
        first = await recv_json(ws)
        await _send(ws, method="SUBSCRIBE", params=["more@trade"], id=2)
        return first, await recv_json(ws)

    first, second = collect(simulator.ws_url + "/ws/btcusdt@trade", script)
    assert first == {"result": None, "id": 1}  # 1 + 1023 = 1024 streams
    assert second == {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": 2}


def test_bad_caps_are_refused_and_change_nothing(simulator):
    url = simulator.http_url + "/_sim/faults"
    requests.post(url, json={"symbol_caps": {"finnhub": 50}}, timeout=5)
    for body in (
        {"symbol_caps": {"nasdaq": 5}},
        {"symbol_caps": {"alpaca": "thirty"}},
        {"symbol_caps": 30},
        {"protocol": "alpaca", "symbol_caps": {"alpaca": 30}},
        {"symbol_caps": {"alpaca": 30}, "stall": True, "teleport": 1},
    ):
        response = requests.post(url, json=body, timeout=5)
        assert response.status_code == 400 and response.json()["error"]
    faults = requests.get(url, timeout=5).json()
    assert faults["symbol_caps"] == {"finnhub": 50} and faults["stall"] is False
    # Caps merge; null restores a protocol's default.
    requests.post(url, json={"symbol_caps": {"alpaca": 30}}, timeout=5)
    merged = requests.post(url, json={"symbol_caps": {"finnhub": None}}, timeout=5)
    assert merged.json()["symbol_caps"] == {"alpaca": 30}
