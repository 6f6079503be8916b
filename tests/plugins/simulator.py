"""pytest fixtures for the built-in exchange simulator.

- `simulator`: a fresh `Simulator` (seed 4242, hours "always", rate 5/s per
  symbol) serving on an ephemeral loopback port in a background thread.
  Attributes: host, port, ws_url, http_url, seed, hours, rate, faults
  (mutable: `simulator.faults.stall = True`), clock (`simulator.clock.set(
  speed=30)` makes a minute pass every 2 s), set_hours("nyse"), key_id,
  secret, finnhub_token, now_ns().
- `simulator_module`: the same, shared by a test module.
- `simulator_settings`: points every provider URL at `simulator` and sets
  TAPELINE_PROVIDER="simulator" (uses pytest-django's `settings`).
- `simulator_process`: factory starting `manage.py simulate_exchange` as a
  subprocess for multi-process integration tests; returns a `SimulatorProcess`
  (http_url, ws_url, port, set_faults(**faults), health(), stop()).
- `trading_soon(*symbols)`: a clock start from which each symbol trades
  within seconds, for a test that waits for trades
  (`simulator.clock.set(start=trading_soon("AAPL"))`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import pytest

from simulator import prices
from simulator.server import Simulator

SIMULATOR_TEST_SEED = 4242
ROOT = Path(__file__).resolve().parents[2]


@lru_cache
def trading_soon(*symbols: str, within: float = 3.0) -> datetime:
    """The first whole second from 15:00 UTC on 2026-12-01 after which each
    of `symbols` trades within `within` seconds (the test seed's tape).
    The tape has quiet spells of up to a minute (at night a stock trades a
    few times a minute), longer than a test waits for a frame: a test that
    waits for trades starts its simulator's clock here, not at the hour it
    happens to run."""
    start = int(datetime(2026, 12, 1, 15, tzinfo=UTC).timestamp())
    times = {
        symbol: [
            minute + offset / 1e9
            for minute in range(start, start + 3600, 60)
            for offset in prices.minute_ticks(
                symbol, minute, seed=SIMULATOR_TEST_SEED
            ).offset_ns.tolist()
        ]
        for symbol in symbols
    }
    for second in range(start, start + 3600):
        if all(
            (i := bisect_right(ticks, second)) < len(ticks)
            and ticks[i] <= second + within
            for ticks in times.values()
        ):
            return datetime.fromtimestamp(second, UTC)
    raise LookupError(f"{symbols} do not all trade within {within} s in that hour")


def start_simulator(**options) -> Simulator:
    options.setdefault("seed", SIMULATOR_TEST_SEED)
    options.setdefault("rate", 5.0)
    options.setdefault("hours", "always")
    options.setdefault("port", 0)
    return Simulator(**options).start_in_thread()


@pytest.fixture
def simulator():
    sim = start_simulator()
    try:
        yield sim
    finally:
        sim.stop_thread()


@pytest.fixture(scope="module")
def simulator_module():
    sim = start_simulator()
    try:
        yield sim
    finally:
        sim.stop_thread()


def point_settings_at(settings, sim) -> None:
    settings.TAPELINE_PROVIDER = "simulator"
    settings.ALPACA_STREAM_URL = sim.ws_url
    settings.ALPACA_DATA_URL = sim.http_url
    settings.FINNHUB_STREAM_URL = sim.ws_url
    settings.FINNHUB_API_URL = sim.http_url + "/api/v1"
    settings.BINANCE_STREAM_URL = sim.ws_url
    settings.BINANCE_API_URL = sim.http_url
    settings.SIMULATOR_HOST = sim.host
    settings.SIMULATOR_PORT = sim.port
    settings.SIMULATOR_SEED = sim.seed
    settings.SIMULATOR_KEY_ID = sim.key_id
    settings.SIMULATOR_SECRET = sim.secret
    settings.SIMULATOR_FINNHUB_TOKEN = sim.finnhub_token


@pytest.fixture
def simulator_settings(simulator, settings):
    point_settings_at(settings, simulator)
    return simulator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SimulatorProcess:
    port: int
    process: subprocess.Popen
    host: str = "127.0.0.1"
    seed: int = SIMULATOR_TEST_SEED
    args: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def _call(self, path: str, payload: dict | None = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.http_url + path, data=data, method="POST" if data else "GET"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def health(self) -> dict:
        return self._call("/_sim/health")

    def set_faults(self, **faults) -> dict:
        return self._call("/_sim/faults", faults)

    def set_clock(self, *, speed: float = 1.0, start: str | None = None) -> dict:
        return self._call("/_sim/clock", {"speed": speed, "start": start})

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"simulate_exchange exited with {self.process.returncode}"
                )
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("simulate_exchange did not answer /_sim/health")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def spawn_simulator(
    *args: str, port: int | None = None, seed: int = SIMULATOR_TEST_SEED
) -> SimulatorProcess:
    """Start `python manage.py simulate_exchange --port P --seed S *args` and
    wait until it answers."""
    port = port or free_port()
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "simulate_exchange",
        "--port",
        str(port),
        "--seed",
        str(seed),
        *args,
    ]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        command, cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT
    )
    handle = SimulatorProcess(port=port, process=process, seed=seed, args=list(args))
    try:
        handle.wait_ready()
    except Exception as exc:
        handle.stop()
        log.seek(0)
        output = log.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"{exc}\n{output}") from exc
    return handle


@pytest.fixture
def simulator_process():
    started: list[SimulatorProcess] = []

    def start(
        *args: str, port: int | None = None, seed: int = SIMULATOR_TEST_SEED
    ) -> SimulatorProcess:
        handle = spawn_simulator(*args, port=port, seed=seed)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
