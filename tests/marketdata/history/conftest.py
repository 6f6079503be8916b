from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import pytest

from marketdata.services import bars_upsert


def make_minutes(
    *, instrument, minutes: Iterable[datetime], seed: int = 7, decimals: int = 2
) -> list[tuple]:
    """Plausible random-walk bars (sound OHLC) for the given minute starts."""
    rng = random.Random(seed)
    quantum = Decimal(1).scaleb(-decimals)
    price = Decimal("100")
    rows = []
    for ts in minutes:
        open_ = price
        close = (open_ + Decimal(rng.randint(-50, 50)) * quantum).max(quantum * 10)
        high = max(open_, close) + Decimal(rng.randint(0, 20)) * quantum
        low = (min(open_, close) - Decimal(rng.randint(0, 20)) * quantum).max(quantum)
        volume = Decimal(rng.randint(1, 5000))
        rows.append(
            (
                instrument.id,
                "1m",
                ts,
                open_,
                high,
                low,
                close,
                volume,
                None,
                rng.randint(1, 50),
            )
        )
        price = close
    return rows


@pytest.fixture
def store_minutes():
    def store(instrument, minutes, **kwargs) -> list[tuple]:
        rows = make_minutes(instrument=instrument, minutes=minutes, **kwargs)
        bars_upsert(rows=rows, provider="test")
        return rows

    return store


# --- a real Dramatiq worker process -------------------------------------------------
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


class WorkerProcess:
    """`manage.py rundramatiq` on the test database and Redis, pointed at a
    simulator subprocess."""

    def __init__(self, env: dict, processes: int = 1, threads: int = 2) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="h3-worker-", suffix=".log")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "rundramatiq",
                "--processes",
                str(processes),
                "--threads",
                str(threads),
            ],  # fmt: skip
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-20000:]

    def kill(self) -> None:
        """Hard crash: SIGKILL the whole process group (no graceful shutdown)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def worker_env(sim, settings) -> dict:
    db = settings.DATABASES["default"]
    env = os.environ.copy()
    env.update(
        DEBUG="1",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        TAPELINE_PROVIDER="simulator",
        SIMULATOR_HOST=sim.host,
        SIMULATOR_PORT=str(sim.port),
        SIMULATOR_SEED=str(sim.seed),
        HISTORY_STALE_SECONDS=str(settings.HISTORY_STALE_SECONDS),
        LOG_LEVEL="WARNING",
    )
    return env


@pytest.fixture
def history_worker(settings):
    """Factory: start simulator-backed workers; all stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(sim, **kwargs) -> WorkerProcess:
        settings.TAPELINE_PROVIDER = "simulator"
        settings.SIMULATOR_HOST = sim.host
        settings.SIMULATOR_PORT = sim.port
        settings.ALPACA_DATA_URL = sim.http_url
        worker = WorkerProcess(worker_env(sim, settings), **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
