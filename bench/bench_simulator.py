"""Exchange simulator throughput: stream messages/s and REST bars/s.

The simulator runs as its own process (`manage.py simulate_exchange`, one
asyncio thread = one core); a websockets asyncio client in this process counts
the messages it receives (every array item / every Binance payload).

Peers measured in the same run:
- stream: a bare aiohttp server sending one pre-encoded frame over and over
  (the transport's ceiling without any generation or encoding work);
- REST: `prices.minute_bars` called in-process (the generator without HTTP
  and JSON).

Run: `python -m bench.bench_simulator` (about 2 minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgpack
import orjson
import requests
import websockets

ROOT = Path(__file__).resolve().parents[1]
DURATION = 8.0
KEY, SECRET = "SIMULATOR-KEY", "simulator-secret"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(args: list[str]) -> tuple[subprocess.Popen, int]:
    port = _port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "SIMULATOR_KEY_ID": KEY,
        "SIMULATOR_SECRET": SECRET,
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_exchange", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/health", timeout=1)
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("simulator did not start")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


async def _alpaca_count(url: str, subscribe: dict, *, binary: bool) -> tuple[int, int]:
    headers = {"Content-Type": "application/msgpack"} if binary else {}
    decode = msgpack.unpackb if binary else orjson.loads
    encode = msgpack.packb if binary else json.dumps
    async with websockets.connect(
        url,
        additional_headers=headers,
        max_size=None,
        compression=None,
        max_queue=4096,
        ping_interval=None,
    ) as ws:
        await ws.recv()
        await ws.send(encode({"action": "auth", "key": KEY, "secret": SECRET}))
        await ws.recv()
        await ws.send(encode({"action": "subscribe", **subscribe}))
        await ws.recv()
        await asyncio.wait_for(ws.recv(), 10)  # warmed up
        messages = frames = 0
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            frame = await ws.recv()
            messages += len(decode(frame))
            frames += 1
        return messages, frames


async def _binance_count(url: str) -> tuple[int, int]:
    async with websockets.connect(
        url, max_size=None, compression=None, max_queue=4096, ping_interval=None
    ) as ws:
        await asyncio.wait_for(ws.recv(), 10)
        messages = 0
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            orjson.loads(await ws.recv())
            messages += 1
        return messages, messages


async def _peer_count(url: str) -> tuple[int, int]:
    async with websockets.connect(
        url, max_size=None, compression=None, max_queue=4096, ping_interval=None
    ) as ws:
        await ws.recv()
        messages = frames = 0
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            messages += len(orjson.loads(await ws.recv()))
            frames += 1
        return messages, frames


def _peer_server_main(port: int, batch: int) -> None:
    from aiohttp import web

    sample = {
        "T": "q",
        "S": "AAPL",
        "bx": "V",
        "bp": 228.03,
        "bs": 3,
        "ax": "V",
        "ap": 228.05,
        "as": 2,
        "c": ["R"],
        "z": "C",
        "t": "2026-11-22T14:30:05.123456789Z",
    }
    frame = orjson.dumps([sample] * batch).decode()

    async def handler(request):
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        try:
            while not ws.closed:
                await ws.send_str(frame)
        except ConnectionError:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def stream_rows() -> list[tuple[str, float, float, float]]:
    rows = []
    scenarios = [
        (
            "alpaca json, 115 symbols, asked 400/s each",
            ["--rate", "400"],
            "/v2/sip",
            False,
        ),
        ("alpaca json, 115 symbols, saturated", ["--rate", "2000"], "/v2/sip", False),
        ("alpaca msgpack, 115 symbols, saturated", ["--rate", "2000"], "/v2/sip", True),
        (
            "alpaca json, 8 crypto, saturated",
            ["--rate", "30000"],
            "/v1beta3/crypto/us",
            False,
        ),
    ]
    for label, args, path, binary in scenarios:
        process, port = _spawn(args)
        try:
            subscribe = {"trades": ["*"], "quotes": ["*"]}
            messages, frames = asyncio.run(
                _alpaca_count(f"ws://127.0.0.1:{port}{path}", subscribe, binary=binary)
            )
        finally:
            _stop(process)
        rows.append(
            (label, messages / DURATION, frames / DURATION, messages / max(frames, 1))
        )
    process, port = _spawn(["--rate", "5000"])
    try:
        streams = "/".join(
            f"{s}@trade/{s}@bookTicker"
            for s in ("btcusdt", "ethusdt", "solusdt", "dogeusdt")
        )
        messages, frames = asyncio.run(
            _binance_count(f"ws://127.0.0.1:{port}/stream?streams={streams}")
        )
    finally:
        _stop(process)
    rows.append(
        (
            "binance combined, 4 symbols, asked 5000/s each",
            messages / DURATION,
            frames / DURATION,
            1.0,
        )
    )
    port = _port()
    peer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from bench.bench_simulator import _peer_server_main; _peer_server_main({port}, 1000)",
        ],
        cwd=ROOT,
    )
    try:
        time.sleep(1.5)
        messages, frames = asyncio.run(_peer_count(f"ws://127.0.0.1:{port}/"))
    finally:
        _stop(peer)
    rows.append(
        (
            "peer: aiohttp resending one encoded frame",
            messages / DURATION,
            frames / DURATION,
            messages / max(frames, 1),
        )
    )
    return rows


def rest_rows() -> list[tuple[str, int, float]]:
    from datetime import UTC, datetime

    from simulator import prices

    symbols = ["AAPL", "MSFT", "NVDA", "SPY", "QQQ"]
    start, end = "2020-01-01T00:00:00Z", "2024-12-31T23:59:00Z"
    process, port = _spawn(["--hours", "nyse"])
    try:
        session = requests.Session()
        session.headers.update({"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
        total = 0
        token = None
        began = time.perf_counter()
        while True:
            params = {
                "symbols": ",".join(symbols),
                "timeframe": "1Min",
                "start": start,
                "end": end,
                "limit": 10000,
            }
            if token:
                params["page_token"] = token
            body = orjson.loads(
                session.get(
                    f"http://127.0.0.1:{port}/v2/stocks/bars", params=params, timeout=60
                ).content
            )
            total += sum(len(v) for v in body["bars"].values())
            token = body["next_page_token"]
            if token is None:
                break
        http_seconds = time.perf_counter() - began
        began = time.perf_counter()
        klines = 0
        cursor = 1704067200000
        for _ in range(200):
            rows = orjson.loads(
                session.get(
                    f"http://127.0.0.1:{port}/api/v3/klines",
                    params={
                        "symbol": "BTCUSDT",
                        "interval": "1m",
                        "startTime": cursor,
                        "limit": 1000,
                    },
                    timeout=60,
                ).content
            )
            klines += len(rows)
            cursor = rows[-1][0] + 60_000
        kline_seconds = time.perf_counter() - began
    finally:
        _stop(process)
    began = time.perf_counter()
    direct = 0
    for symbol in symbols:
        direct += len(
            prices.minute_bars(
                symbol,
                datetime(2020, 1, 1, tzinfo=UTC),
                datetime(2025, 1, 1, tzinfo=UTC),
                seed=42,
                hours="nyse",
            )
        )
    direct_seconds = time.perf_counter() - began
    return [
        (
            "alpaca REST 1Min, 5 symbols x 5 years, 10000/page",
            total,
            total / http_seconds,
        ),
        ("binance REST klines 1m, 200 pages x 1000", klines, klines / kline_seconds),
        ("peer: prices.minute_bars in-process", direct, direct / direct_seconds),
    ]


def main() -> None:
    os.environ.setdefault("DEBUG", "1")
    sys.path.insert(0, str(ROOT))
    print(f"Stream output ({DURATION:.0f} s per row, simulator in its own process)")
    print(f"{'scenario':48} {'msgs/s':>10} {'frames/s':>10} {'msgs/frame':>10}")
    rows = stream_rows()
    if os.environ.get("BENCH_STREAM_ONLY"):
        rest_rows_enabled = False
    else:
        rest_rows_enabled = True
    peer = rows[-1][1]
    for label, rate, frame_rate, per_frame in rows:
        print(f"{label:48} {rate:10,.0f} {frame_rate:10,.0f} {per_frame:10.1f}")
    best = max(r[1] for r in rows[:-1])
    print(f"best simulator rate / peer transport ceiling: {best / peer:.2f}")
    if not rest_rows_enabled:
        return
    print()
    print("REST history")
    print(f"{'scenario':48} {'bars':>10} {'bars/s':>12}")
    rest = rest_rows()
    for label, count, rate in rest:
        print(f"{label:48} {count:10,} {rate:12,.0f}")
    print(f"alpaca REST bars/s / in-process generation: {rest[0][2] / rest[-1][2]:.2f}")


if __name__ == "__main__":
    main()
