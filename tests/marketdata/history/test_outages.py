"""History jobs finish by themselves through real outages (issue 10, defect 2):
a private PostgreSQL stopped like a crash mid-load, a Dramatiq worker killed
with SIGKILL and a Redis restarted empty. Everything runs as real processes
(`rundramatiq`, `load_history`, `simulate_exchange`) against a private
PostgreSQL cluster and a private Redis that the tests may kill; no command
is run again by hand. Every stored minute is compared with the simulator's
REST history."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from simulator.prices import minute_bars
from tests.marketdata.history.conftest import ROOT, WorkerProcess
from tests.plugins.simulator import free_port

pytestmark = [pytest.mark.integration]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def as_postgres(command: str) -> None:
    subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True)


class PrivatePostgres:
    """A PostgreSQL cluster of its own, stopped and started like a crash."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tl-history-pg-"))
        shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/tapeline"
        as_postgres(
            f"{PG_BIN}/initdb -D {self.dir}/data -U postgres --auth=trust -E UTF8"
        )
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        )
        as_postgres(
            f"{PG_BIN}/pg_ctl -D {self.dir}/data -o '{options}' "
            f"-l {self.dir}/log -w start"
        )

    def crash(self) -> None:
        as_postgres(f"{PG_BIN}/pg_ctl -D {self.dir}/data -m immediate stop")

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def remove(self) -> None:
        subprocess.run(
            ["su", "postgres", "-c",
             f"{PG_BIN}/pg_ctl -D {self.dir}/data -m immediate stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.pidfile = Path(tempfile.gettempdir()) / f"tl-history-redis-{self.port}.pid"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly",
             "no", "--daemonize", "yes", "--pidfile", str(self.pidfile)],
            check=True, capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "private redis did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.pidfile.exists():
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 15)
            deadline = time.monotonic() + 10
            while self.pidfile.exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    def restart_empty(self) -> None:
        """What a Redis without persistence looks like after a restart."""
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def stack():
    """A private PostgreSQL (migrated, instruments seeded) and Redis."""
    pg = PrivatePostgres()
    redis = PrivateRedis()
    try:
        with psycopg.connect(
            pg.url.rsplit("/", 1)[0] + "/postgres", autocommit=True
        ) as c:
            c.execute("CREATE DATABASE tapeline")
        env = {
            **os.environ,
            "DEBUG": "1",
            "DATABASE_URL": pg.url,
            "REDIS_URL": redis.url,
        }
        for command in (["migrate", "-v0"], ["seed_instruments"]):
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), *command],
                cwd=ROOT, env=env, check=True, capture_output=True,
            )  # fmt: skip
        yield pg, redis
    finally:
        redis.stop()
        pg.remove()


def stack_env(pg, redis, sim) -> dict:
    return {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis.url,
        "TAPELINE_PROVIDER": "simulator",
        "SIMULATOR_HOST": sim.host,
        "SIMULATOR_PORT": str(sim.port),
        "SIMULATOR_SEED": str(sim.seed),
        # Two REST pages a second: a load lasts long enough to be interrupted.
        "SIMULATOR_RATE_LIMIT": "120",
        "HISTORY_STALE_SECONDS": "10",
        "HISTORY_RECLAIM_EVERY": "1",
        "LOG_LEVEL": "WARNING",
    }


def chunk_states(pg, symbols: list[str]) -> list[tuple[str, int]]:
    with pg.connect() as conn:
        return conn.execute(
            "SELECT c.state, c.attempts FROM marketdata_loadchunk c "
            "JOIN marketdata_loadjob j ON j.id = c.job_id "
            "WHERE j.symbols = %s::jsonb ORDER BY c.id",
            [psycopg.types.json.Jsonb(sorted(symbols))],
        ).fetchall()


def job_state(pg, symbols: list[str]) -> str:
    with pg.connect() as conn:
        return conn.execute(
            "SELECT state FROM marketdata_loadjob WHERE symbols = %s::jsonb",
            [psycopg.types.json.Jsonb(sorted(symbols))],
        ).fetchone()[0]


def wait_for(predicate, timeout: float, what: str, *logs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except psycopg.OperationalError:
            pass  # the private database is down on purpose
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(logs))


def assert_matches_the_simulator(pg, sim, symbols, start, end) -> None:
    with pg.connect() as conn:
        for symbol in symbols:
            stored = {
                ts
                for (ts,) in conn.execute(
                    "SELECT b.ts FROM marketdata_bar b JOIN marketdata_instrument i "
                    "ON i.id = b.instrument_id WHERE i.symbol = %s AND b.timeframe = "
                    "'1m' AND b.ts >= %s AND b.ts < %s",
                    [symbol, start, end],
                )
            }
            truth = minute_bars(symbol, start, end, seed=sim.seed, hours="always")
            expected = {datetime.fromtimestamp(int(t), tz=UTC) for t in truth.ts}
            assert len(expected) > 40_000
            assert stored == expected, f"{symbol}: {len(expected - stored)} missing"


def test_a_database_crash_mid_load_heals_without_a_hand(stack, simulator_process):
    pg, redis = stack
    sim = simulator_process("--hours", "always")
    env = stack_env(pg, redis, sim)
    worker = WorkerProcess(env, threads=2)
    symbols = ["BTC/USD", "ETH/USD"]
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)
    watcher_log = tempfile.TemporaryFile()
    watcher = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "load_history", "--symbols",
         ",".join(symbols), "--start", "2024-01-01", "--end", "2024-04-01",
         "--poll", "0.2"],
        cwd=ROOT, env=env, stdout=watcher_log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def watcher_output() -> str:
        watcher_log.seek(0)
        return watcher_log.read().decode(errors="replace")

    try:
        wait_for(
            lambda: [s for s, _ in chunk_states(pg, symbols)].count("done") >= 1,
            60, "the first chunk", worker.output(), watcher_output(),
        )  # fmt: skip
        pg.crash()  # mid-load: 5 of 6 chunks still to go
        time.sleep(10)
        pg.start()
        watcher.wait(90)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        worker.stop()
    out = watcher_output()
    assert watcher.returncode == 0, out + worker.output()
    assert "database unreachable, waiting…" in out and "back after" in out, out
    assert "Traceback" not in out
    states = chunk_states(pg, symbols)
    # A chunk whose pages were all stored before the crash finds them stored
    # when it runs again: skipped, as covered.
    assert {s for s, _ in states} <= {"done", "skipped"} and len(states) == 6, states
    assert job_state(pg, symbols) == "done"
    assert max(a for _, a in states) > 1, "no chunk was interrupted by the outage"
    assert_matches_the_simulator(pg, sim, symbols, start, end)
    log = worker.output()
    assert "Retries exceeded" not in log
    # The reclaimer thread saw the outage: one line when it began, one after.
    assert log.count("reclaimer: marketdata.reclaim.work_reclaim failed") == 1, log
    assert log.count("work_reclaim working again after") == 1, log


def test_a_killed_worker_and_an_emptied_redis_heal_without_a_hand(
    stack, simulator_process
):
    pg, redis = stack
    sim = simulator_process("--hours", "always")
    env = stack_env(pg, redis, sim)
    symbols = ["LTC/USD", "SOL/USD"]
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 4, 1, tzinfo=UTC)
    first = WorkerProcess(env, threads=1)
    second = None
    try:
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "load_history", "--symbols",
             ",".join(symbols), "--start", "2023-01-01", "--end", "2023-04-01",
             "--no-wait"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip

        def one_done_one_running() -> bool:
            states = [s for s, _ in chunk_states(pg, symbols)]
            return "done" in states and "running" in states

        wait_for(one_done_one_running, 60, "a chunk under way", first.output())
        first.kill()  # SIGKILL mid-chunk: its message and heartbeat stop
        redis.restart_empty()  # ... and every queued message is gone
        second = WorkerProcess(env, threads=2)
        wait_for(
            lambda: job_state(pg, symbols) == "done",
            60, "the job to finish by itself", first.output(), second.output(),
        )  # fmt: skip
    finally:
        first.kill()
        if second is not None:
            second.stop()
    assert job_state(pg, symbols) == "done"
    assert_matches_the_simulator(pg, sim, symbols, start, end)
