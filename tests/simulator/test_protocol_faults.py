"""Faults aimed at one protocol (`POST /_sim/faults` with `"protocol"`).

`freeze` is a hung provider process: its sockets stay open, nothing arrives,
WebSocket pings go unanswered and new upgrades hang, while the other
protocols carry on; switched off, the sessions resume (the pending ping is
answered, data flows again). `stall` keeps answering pings.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
import websocket
import websockets

from simulator.tape import parse_time_ns
from tests.simulator.helpers import alpaca_login, recv_json, wait_for


def _faults(sim, **body) -> dict:
    response = requests.post(sim.http_url + "/_sim/faults", json=body, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def _frozen_sessions(sim, protocol: str) -> int:
    health = requests.get(sim.http_url + "/_sim/health", timeout=5).json()
    return health["sessions_by_protocol"][protocol]["frozen"]


class Alpaca:
    path = "/v1beta3/crypto/us"

    @staticmethod
    async def setup(ws, sim) -> None:
        await alpaca_login(ws, sim)
        await ws.send(
            json.dumps(
                {"action": "subscribe", "trades": ["BTC/USD"], "quotes": ["BTC/USD"]}
            )
        )
        assert (await recv_json(ws))[0]["T"] == "subscription"

    @staticmethod
    def times(frame) -> list[int]:
        return [parse_time_ns(m["t"]) for m in frame if m["T"] in ("t", "q")]


CRYPTO = ("btcusdt", "ethusdt", "solusdt", "dogeusdt", "ltcusdt", "xrpusdt")
STOCKS = ("AAPL", "MSFT", "NVDA", "AMZN", "META", "TSLA", "AMD", "GOOGL")


class Binance:
    path = "/ws/" + "/".join(f"{s}@trade" for s in CRYPTO)

    @staticmethod
    async def setup(ws, sim) -> None:
        pass

    @staticmethod
    def times(frame) -> list[int]:
        return [frame["T"] * 1_000_000] if frame.get("e") == "trade" else []


class Finnhub:
    path = "/?token={token}"

    @staticmethod
    async def setup(ws, sim) -> None:
        for symbol in STOCKS:
            await ws.send(json.dumps({"type": "subscribe", "symbol": symbol}))

    @staticmethod
    def times(frame) -> list[int]:
        return [t["t"] * 1_000_000 for t in frame.get("data", [])]


PROTOCOLS = {"alpaca": Alpaca, "binance": Binance, "finnhub": Finnhub}


def _url(sim, protocol: str) -> str:
    return sim.ws_url + PROTOCOLS[protocol].path.format(token=sim.finnhub_token)


def _connect(sim, protocol: str):
    # No keepalive pings of the client's own; an unbounded receive queue, so
    # frames left unread never stall the closing handshake at the end.
    return websockets.connect(_url(sim, protocol), ping_interval=None, max_queue=None)


async def _fresh(ws, protocol: str, after_ns: int, count: int) -> int:
    """Read until `count` data messages newer than `after_ns` arrived."""
    seen = 0
    while seen < count:
        frame = await recv_json(ws, timeout=15)
        seen += sum(t > after_ns for t in PROTOCOLS[protocol].times(frame))
    return seen


@pytest.mark.parametrize(
    "frozen,other",
    [("alpaca", "binance"), ("binance", "finnhub"), ("finnhub", "alpaca")],
)
def test_freeze_silences_one_protocol_while_another_streams(simulator, frozen, other):
    simulator.finnhub_ping_interval = 0.5
    simulator.clock.set(speed=10)  # trades come faster

    async def main():
        async with (
            _connect(simulator, frozen) as ws,
            _connect(simulator, other) as peer,
        ):
            await PROTOCOLS[frozen].setup(ws, simulator)
            await PROTOCOLS[other].setup(peer, simulator)
            await _fresh(ws, frozen, 0, 1)
            await _fresh(peer, other, 0, 1)

            await asyncio.to_thread(_faults, simulator, protocol=frozen, freeze=True)
            assert await asyncio.to_thread(
                wait_for, lambda: _frozen_sessions(simulator, frozen) == 1
            )
            assert _frozen_sessions(simulator, other) == 0
            frozen_at = simulator.now_ns()
            pong = await ws.ping()
            # The other protocol streams on...
            await _fresh(peer, other, frozen_at, 10)
            # ...while the frozen one answers no ping (a SIGSTOPped process).
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pong), 2.0)
            # Frames still arriving were sent before the freeze; then silence
            # (Finnhub's heartbeat, due every 0.5 s, stops too). Bounded: a
            # live session never falls silent for a second.
            stale = []
            with pytest.raises(TimeoutError):
                for _ in range(200):
                    stale.append(json.loads(await asyncio.wait_for(ws.recv(), 1.5)))
            assert all(
                t <= frozen_at for f in stale for t in PROTOCOLS[frozen].times(f)
            )

            await asyncio.to_thread(_faults, simulator, protocol=frozen, freeze=False)
            await asyncio.wait_for(pong, 10)  # the queued ping is answered
            thawed_at = simulator.now_ns()
            await _fresh(ws, frozen, thawed_at, 3)  # and live data resumes

    asyncio.run(asyncio.wait_for(main(), 60))


def test_frozen_binance_sends_no_server_pings_until_thawed(simulator):
    simulator.binance_ping_interval = 0.4
    ws = websocket.create_connection(_url(simulator, "binance"), timeout=5)

    def next_ping() -> None:
        while True:  # websocket-client returns control frames when asked
            opcode, _ = ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PING:
                return

    try:
        next_ping()
        _faults(simulator, protocol="binance", freeze=True)
        assert wait_for(lambda: _frozen_sessions(simulator, "binance") == 1)
        ws.settimeout(1.5)
        # Frames sent before the freeze drain, then silence although a ping
        # is due every 0.4 s (bounded: a live session never falls silent).
        with pytest.raises(websocket.WebSocketTimeoutException):
            for _ in range(200):
                ws.recv_data_frame(control_frame=True)
        _faults(simulator, protocol="binance", freeze=False)
        ws.settimeout(5)
        next_ping()
    finally:
        ws.close()


def test_stall_on_one_protocol_answers_pings_and_spares_the_others(simulator):
    simulator.clock.set(speed=10)
    faults = _faults(simulator, protocol="binance", stall=True)
    assert faults["stall"] is False and faults["protocols"] == {
        "binance": {"stall": True}
    }
    assert faults["effective"]["binance"]["stall"] is True
    assert faults["effective"]["alpaca"]["stall"] is False

    async def main():
        async with (
            _connect(simulator, "binance") as ws,
            _connect(simulator, "alpaca") as peer,
        ):
            await PROTOCOLS["alpaca"].setup(peer, simulator)
            started = simulator.now_ns()
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)  # a stalled server still answers
            await _fresh(peer, "alpaca", started, 6)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 1.0)
            # A global change leaves the override alone; a protocol reset ends it.
            await asyncio.to_thread(_faults, simulator, stall=False)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 1.0)
            await asyncio.to_thread(_faults, simulator, protocol="binance", reset=True)
            await _fresh(ws, "binance", started, 2)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_new_upgrades_hang_while_frozen_and_global_freeze_covers_all(simulator):
    _faults(simulator, protocol="finnhub", freeze=True)

    async def connect(protocol: str, timeout: float) -> None:
        async with websockets.connect(_url(simulator, protocol), open_timeout=timeout):
            pass

    async def main():
        with pytest.raises(TimeoutError):
            await connect("finnhub", 1.5)
        await connect("binance", 5)  # other protocols accept connections
        await asyncio.to_thread(_faults, simulator, protocol="finnhub", reset=True)
        await connect("finnhub", 5)
        async with (
            _connect(simulator, "alpaca") as a,
            _connect(simulator, "binance") as b,
        ):
            await asyncio.to_thread(_faults, simulator, freeze=True)  # every protocol
            for protocol in ("alpaca", "binance"):
                assert await asyncio.to_thread(
                    wait_for, lambda p=protocol: _frozen_sessions(simulator, p) == 1
                )
            await asyncio.to_thread(_faults, simulator, reset=True)
            assert await asyncio.to_thread(
                wait_for,
                lambda: (
                    _frozen_sessions(simulator, "alpaca")
                    + _frozen_sessions(simulator, "binance")
                    == 0
                ),
            )
            await asyncio.wait_for(await a.ping(), 5)
            await asyncio.wait_for(await b.ping(), 5)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_rest_faults_for_one_protocol(simulator):
    _faults(simulator, protocol="finnhub", rest_500_rate=1)
    finnhub = requests.get(
        simulator.http_url + "/api/v1/quote",
        params={"symbol": "AAPL", "token": simulator.finnhub_token},
        timeout=5,
    )
    assert finnhub.status_code == 500 and finnhub.json() == {
        "error": "Internal server error."
    }
    binance = requests.get(
        simulator.http_url + "/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "limit": 2},
        timeout=5,
    )
    assert binance.status_code == 200 and len(binance.json()) == 2
    _faults(simulator, protocol="alpaca", reject_auth=True)
    alpaca = requests.get(
        simulator.http_url + "/v2/stocks/AAPL/bars",
        params={"timeframe": "1Min"},
        headers={
            "APCA-API-KEY-ID": simulator.key_id,
            "APCA-API-SECRET-KEY": simulator.secret,
        },
        timeout=5,
    )
    assert alpaca.status_code == 403
    finnhub_token_ok = requests.get(
        simulator.http_url + "/api/v1/search",
        params={"q": "apple", "token": simulator.finnhub_token},
        timeout=5,
    )
    assert finnhub_token_ok.status_code == 500  # only its 500 switch is on
    _faults(simulator, protocol="finnhub", reset=True)
    assert (
        requests.get(
            simulator.http_url + "/api/v1/quote",
            params={"symbol": "AAPL", "token": simulator.finnhub_token},
            timeout=5,
        ).status_code
        == 200
    )
    for body in ({"protocol": "nasdaq", "stall": True}, {"protocol": "alpaca", "x": 1}):
        response = requests.post(
            simulator.http_url + "/_sim/faults", json=body, timeout=5
        )
        assert response.status_code == 400 and response.json()["error"]
