"""`manage.py simulate_exchange` as a separate process, and the fixtures."""

from __future__ import annotations

import json
import subprocess
import sys

import requests

from simulator import prices
from tests.plugins.simulator import ROOT, free_port
from tests.simulator.helpers import alpaca_login, collect, recv_json


def test_command_serves_all_providers_and_takes_faults_at_run_time(simulator_process):
    sim = simulator_process("--hours", "nyse", "--rate", "3", seed=77)
    health = sim.health()
    assert (health["seed"], health["hours"], health["rate"]) == (77, "nyse", 3.0)
    headers = {
        "APCA-API-KEY-ID": "SIMULATOR-KEY",
        "APCA-API-SECRET-KEY": "simulator-secret",
    }
    bars = requests.get(
        sim.http_url + "/v2/stocks/AAPL/bars",
        params={
            "timeframe": "1Min",
            "start": "2024-07-10",
            "end": "2024-07-11",
            "limit": 10000,
        },
        headers=headers,
        timeout=30,
    ).json()["bars"]
    assert len(bars) == 390 and bars[0]["t"] == "2024-07-10T13:30:00Z"
    assert bars[0]["o"] == prices.minute_bar("AAPL", 1720618200, seed=77).o[0]
    klines = requests.get(
        sim.http_url + "/api/v3/klines",
        params={"symbol": "ETHUSDT", "interval": "1h"},
        timeout=30,
    )
    assert klines.status_code == 200 and len(klines.json()) == 500

    sim.set_faults(rest_429_rate=1.0)
    limited = requests.get(
        sim.http_url + "/api/v1/quote",
        params={"symbol": "AAPL", "token": "simtoken"},
        timeout=5,
    )
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    sim.set_faults(reset=True)

    class Keys:
        key_id, secret = headers["APCA-API-KEY-ID"], headers["APCA-API-SECRET-KEY"]

    async def script(ws):
        await alpaca_login(ws, Keys)
        await ws.send(
            json.dumps(
                {"action": "subscribe", "trades": ["BTC/USD"], "quotes": ["BTC/USD"]}
            )
        )
        await recv_json(ws)
        return await recv_json(ws, timeout=30)

    data = collect(sim.ws_url + "/v1beta3/crypto/us", script, timeout=60)
    assert data[0]["S"] == "BTC/USD" and data[0]["T"] in {"t", "q"}


def test_symbol_caps_from_the_command_line(simulator_process):
    sim = simulator_process(
        "--symbol-cap", "alpaca=1,finnhub=2", "--symbol-cap", "binance=3"
    )
    faults = sim.set_faults(protocol="finnhub", stall=True)
    assert faults["symbol_caps"] == {"alpaca": 1, "finnhub": 2, "binance": 3}
    assert faults["effective"]["finnhub"]["stall"] is True
    assert faults["effective"]["alpaca"]["stall"] is False

    class Keys:
        key_id, secret = "SIMULATOR-KEY", "simulator-secret"

    async def script(ws):
        await alpaca_login(ws, Keys)
        await ws.send(json.dumps({"action": "subscribe", "trades": ["AAPL"]}))
        ack = await recv_json(ws)
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["MSFT"]}))
        return ack, await recv_json(ws)

    ack, refused = collect(sim.ws_url + "/v2/iex", script, timeout=30)
    assert ack[0]["trades"] == ["AAPL"]
    assert refused == [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]


def test_bad_options_fail_clearly():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "simulate_exchange",
            "--hours",
            "lunch",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,  # Django start-up on a loaded machine
    )
    assert result.returncode != 0 and "invalid choice" in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "simulate_exchange",
            "--port",
            str(free_port()),
            "--replay",
            "/nonexistent/feed.jsonl.gz",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,  # Django start-up on a loaded machine
    )
    assert result.returncode != 0 and "no recording" in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "simulate_exchange",
            "--symbol-cap",
            "nasdaq=5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,  # Django start-up on a loaded machine
    )
    assert result.returncode != 0 and "unknown protocol 'nasdaq'" in result.stderr


def test_simulator_settings_point_every_provider_at_the_fixture(
    simulator_settings, settings
):
    sim = simulator_settings
    assert settings.TAPELINE_PROVIDER == "simulator"
    assert settings.ALPACA_STREAM_URL == settings.FINNHUB_STREAM_URL == sim.ws_url
    assert settings.BINANCE_STREAM_URL == sim.ws_url
    assert settings.ALPACA_DATA_URL == settings.BINANCE_API_URL == sim.http_url
    assert settings.FINNHUB_API_URL == sim.http_url + "/api/v1"
    quote = requests.get(
        settings.FINNHUB_API_URL + "/quote",
        params={"symbol": "AAPL", "token": settings.SIMULATOR_FINNHUB_TOKEN},
        timeout=10,
    )
    assert quote.json()["c"] > 0
