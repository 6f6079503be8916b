"""Fault injection as a client observes it, switched at run time."""

from __future__ import annotations

import asyncio
import json
import time

import orjson
import pytest
import requests
import websockets

from tests.simulator.helpers import alpaca_login, collect, recv_json


def _subscribe(ws, **channels):
    return ws.send(json.dumps({"action": "subscribe", **channels}))


def test_stall_keeps_the_socket_alive_but_silent(simulator):
    simulator.faults.stall = True

    async def script(ws):
        await alpaca_login(ws, simulator)
        await _subscribe(ws, trades=["BTC/USD"], quotes=["BTC/USD", "ETH/USD"])
        ack = await recv_json(ws)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 2.0)
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)  # still answers pings
        simulator.faults.stall = False
        data = await recv_json(ws)
        return ack, data

    ack, data = collect(simulator.ws_url + "/v1beta3/crypto/us", script)
    assert ack[0]["T"] == "subscription"
    assert data and data[0]["T"] in {"t", "q"}


def test_malformed_frames_at_a_rate(simulator):
    simulator.faults.malformed_rate = 1.0

    async def script(ws):
        await alpaca_login(ws, simulator)
        await _subscribe(ws, quotes=["BTC/USD"])
        await recv_json(ws)  # control frames are never corrupted
        bad = [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)]
        simulator.faults.malformed_rate = 0.0
        await asyncio.sleep(0.3)
        good = await recv_json(ws)
        return bad, good

    bad, good = collect(simulator.ws_url + "/v1beta3/crypto/us", script)
    for frame in bad:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(frame)
    assert good[0]["T"] == "q"


def test_drop_every_aborts_connections_without_a_close_frame(simulator):
    simulator.faults.drop_every = 1.0

    async def script(ws):
        started = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed) as excinfo:
            while True:
                await ws.recv()
        return time.monotonic() - started, excinfo.value

    elapsed, closed = collect(simulator.ws_url + "/ws/btcusdt@trade", script)
    assert 0.5 < elapsed < 5
    assert closed.rcvd is None  # no close frame: the TCP connection just died


def test_reject_auth_switch(simulator):
    simulator.faults.reject_auth = True

    async def script(ws):
        await recv_json(ws)
        await ws.send(
            json.dumps(
                {"action": "auth", "key": simulator.key_id, "secret": simulator.secret}
            )
        )
        return await recv_json(ws)

    assert collect(simulator.ws_url + "/v2/iex", script)[0]["code"] == 402
    simulator.faults.reject_auth = False
    collect(simulator.ws_url + "/v2/iex", lambda ws: alpaca_login(ws, simulator))


def test_control_endpoint_changes_faults_of_a_running_server(simulator):
    url = simulator.http_url + "/_sim/faults"
    changed = requests.post(
        url, json={"rest_500_rate": 1, "stall": "true"}, timeout=5
    ).json()
    assert changed["rest_500_rate"] == 1.0 and changed["stall"] is True
    assert simulator.faults.stall is True
    broken = requests.get(
        simulator.http_url + "/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m"},
        timeout=5,
    )
    assert broken.status_code == 500
    assert requests.post(url, json={"teleport": 1}, timeout=5).status_code == 400
    assert requests.post(url, json={"malformed_rate": 3}, timeout=5).status_code == 400
    reset = requests.post(url, json={"reset": True}, timeout=5).json()
    assert reset["rest_500_rate"] == 0.0 and reset["stall"] is False
    health = requests.get(simulator.http_url + "/_sim/health", timeout=5).json()
    assert health["seed"] == simulator.seed and health["status"] == "ok"


def test_slow_client_gets_407_and_is_disconnected(simulator, monkeypatch):
    from simulator import session

    monkeypatch.setattr(session, "MAX_QUEUED_FRAMES", 5)
    simulator.clock.set(speed=50)
    simulator.faults.update()

    async def script(ws):
        await alpaca_login(ws, simulator)
        await _subscribe(ws, trades=["*"], quotes=["*"])
        await recv_json(ws)
        await asyncio.sleep(6)  # a client that stopped reading
        frames = []
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                frames.append(await asyncio.wait_for(ws.recv(), 10))
        return [json.loads(f) for f in frames]

    frames = collect(
        simulator.ws_url + "/v2/sip", script, timeout=60, max_queue=1, compression=None
    )
    assert [{"T": "error", "code": 407, "msg": "slow client"}] in frames
