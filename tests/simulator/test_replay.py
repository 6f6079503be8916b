"""`--replay`: a recording (`streaming.recording`) served through the same
protocols."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgpack
import pytest

from simulator.replay import Replayer
from streaming.recording import FrameRecorder, daily_path
from tests.plugins.simulator import start_simulator
from tests.simulator.helpers import (
    alpaca_login,
    collect,
    recv_json,
    recv_msgpack,
)

DAY1 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 3, 3, 14, 30, tzinfo=UTC).timestamp()


def _trade(symbol: str, price: float, stamp: str) -> dict:
    return {
        "T": "t",
        "S": symbol,
        "i": 1,
        "x": "V",
        "p": price,
        "s": 10,
        "c": ["@"],
        "z": "C",
        "t": stamp,
    }


@pytest.fixture
def alpaca_recording(tmp_path):
    base = tmp_path / "session.jsonl.gz"
    with FrameRecorder(base) as recorder:
        url = "wss://stream.data.alpaca.markets/v2/iex"
        recorder.write("alpaca", url, '[{"T":"success","msg":"connected"}]', DAY1)
        recorder.write(
            "alpaca",
            url,
            json.dumps(
                [
                    _trade("AAPL", 101.25, "2026-03-02T14:30:01.123456789Z"),
                    _trade("MSFT", 400.5, "2026-03-02T14:30:01.2Z"),
                ]
            ),
            DAY1 + 1,
        )
        recorder.write(
            "alpaca",
            url,
            json.dumps([_trade("AAPL", 101.3, "2026-03-02T14:30:02Z")]),
            DAY1 + 2,
        )
        recorder.write(
            "binance",
            "wss://data-stream.binance.vision/ws/btcusdt@trade",
            json.dumps(
                {
                    "e": "trade",
                    "E": 1,
                    "s": "BTCUSDT",
                    "t": 7,
                    "p": "1.00000000",
                    "q": "2.00000000",
                    "T": 1,
                    "m": True,
                    "M": True,
                }
            ),
            DAY1 + 2.5,
        )
    return daily_path(base, "2026-03-02")


def test_replay_serves_recorded_alpaca_frames_filtered_by_subscription(
    alpaca_recording,
):
    sim = start_simulator(replayer=Replayer(alpaca_recording, speed=4))
    try:

        async def script(ws):
            await alpaca_login(ws, sim)
            await ws.send(json.dumps({"action": "subscribe", "trades": ["AAPL"]}))
            await recv_json(ws)
            return [await recv_json(ws), await recv_json(ws)]

        frames = collect(sim.ws_url + "/v2/iex", script)
    finally:
        sim.stop_thread()
    assert frames == [
        [_trade("AAPL", 101.25, "2026-03-02T14:30:01.123456789Z")],
        [_trade("AAPL", 101.3, "2026-03-02T14:30:02Z")],
    ]


def test_replay_to_msgpack_and_binance_clients(alpaca_recording):
    sim = start_simulator(replayer=Replayer(alpaca_recording, speed=4))
    try:

        async def alpaca(ws):
            await recv_msgpack(ws)
            await ws.send(
                msgpack.packb(
                    {"action": "auth", "key": sim.key_id, "secret": sim.secret}
                )
            )
            await recv_msgpack(ws)
            await ws.send(msgpack.packb({"action": "subscribe", "trades": ["MSFT"]}))
            await recv_msgpack(ws)
            return await recv_msgpack(ws)

        msft = collect(
            sim.ws_url + "/v2/sip",
            alpaca,
            additional_headers={"Content-Type": "application/msgpack"},
        )
        binance = collect(sim.ws_url + "/stream?streams=btcusdt@trade", recv_json)
    finally:
        sim.stop_thread()
    assert msft[0]["p"] == 400.5
    assert msft[0]["t"] == msgpack.Timestamp(
        int(datetime(2026, 3, 2, 14, 30, 1, tzinfo=UTC).timestamp()), 200_000_000
    )
    assert binance["stream"] == "btcusdt@trade" and binance["data"]["t"] == 7
