"""A private Tapeline installation that fault tests may break.

`Stack` owns a PostgreSQL cluster (initdb under /tmp, its own port) and a
Redis server (its own port), never the shared ones on 5432/6379, and the four
processes of a deployment, each in its own process group so a kill takes its
children with it: the exchange simulator (`simulate_exchange --hours
extended`, its clock run fast), `start_streams`, `rundramatiq` (1 process, 2
threads) and Daphne. Every process gets the same environment (the private
DATABASE_URL/REDIS_URL, provider URLs at the simulator, the nothing-lost
settings made small) and appends to its own log file, so a failed test can
show what each one said (`tail`).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from tests.chaos.servers import (
    PrivatePostgres,
    PrivateRedis,
    Process,
)
from tests.plugins.simulator import SIMULATOR_TEST_SEED, free_port

ROOT = Path(__file__).resolve().parents[2]
NEW_YORK = ZoneInfo("America/New_York")
SIM_KEY, SIM_SECRET = "SIMULATOR-KEY", "simulator-secret"
USER = "chaos"  # owns the watchlist and the alert rules


def session_start(*, at: dtime, after: datetime | None = None) -> datetime:
    """`at` New York time on the first NYSE trading day after today: a
    simulated clock started there is ahead of the wall clock for the whole
    run (the stream worker closes minutes by the later of the two) and sees
    the regular session and the extended hours whatever the day of the run."""
    from marketdata.calendar import nyse_session

    day = (after or datetime.now(UTC)).astimezone(NEW_YORK).date() + timedelta(days=1)
    while nyse_session(day) is None:
        day += timedelta(days=1)
    return datetime.combine(day, at, NEW_YORK).astimezone(UTC)


@dataclass
class Stack:
    root: Path
    clock_speed: float
    clock_start: datetime | None  # None: the wall clock (speed 1)
    settings: dict[str, str]
    symbols: list[str]
    postgres: PrivatePostgres = field(init=False)
    redis: PrivateRedis = field(init=False)
    sim_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    seed: int = SIMULATOR_TEST_SEED
    processes: dict[str, Process] = field(default_factory=dict)
    alerts: list = field(default_factory=list)  # every rule an episode armed
    _db: psycopg.Connection | None = None
    _console: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.postgres = PrivatePostgres(self.root, free_port())
        self.redis = PrivateRedis(self.root, free_port())

    # --- environment ---------------------------------------------------------
    @property
    def sim_http(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def env(self) -> dict[str, str]:
        sim_ws = f"ws://127.0.0.1:{self.sim_port}"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYTEST", "DJANGO_ALLOW"))
        }
        env.update(
            DEBUG="1",
            SECRET_KEY="chaos-suite-only-not-a-secret",
            DATABASE_URL=self.postgres.url(),
            REDIS_URL=self.redis.url,
            TAPELINE_PROVIDER="simulator",
            TAPELINE_CRYPTO_PROVIDER="",
            SIMULATOR_HOST="127.0.0.1",
            SIMULATOR_PORT=str(self.sim_port),
            SIMULATOR_SEED=str(self.seed),
            SIMULATOR_KEY_ID=SIM_KEY,
            SIMULATOR_SECRET=SIM_SECRET,
            ALPACA_STREAM_URL=sim_ws,
            ALPACA_DATA_URL=self.sim_http,
            FINNHUB_STREAM_URL=sim_ws,
            FINNHUB_API_URL=self.sim_http + "/api/v1",
            BINANCE_STREAM_URL=sim_ws,
            BINANCE_API_URL=self.sim_http,
            ALPACA_API_KEY="",
            FINNHUB_TOKEN="",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.settings)
        return env

    # --- life cycle ----------------------------------------------------------
    def start(self) -> None:
        self.postgres.init()
        self.postgres.start()
        self.postgres.create_database()
        self.redis.start()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("seed_instruments")
        self.ask("user_with_watchlist", username=USER, symbols=self.symbols)
        self.define(
            "simulator", "simulate_exchange", "--port", str(self.sim_port),
            "--seed", str(self.seed), "--hours", "extended", "--rate", "2",
        )  # fmt: skip
        self.define("worker", "rundramatiq", "--processes", "1", "--threads", "2")
        self.define("streams", "start_streams")
        self.processes["web"] = Process(
            "web",
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.web_port),
                "core.asgi:application",
            ],  # fmt: skip
            self.root / "web.log",
        )
        self.spawn("simulator")
        self.wait_http(self.sim_http + "/_sim/health", "simulator")
        if self.clock_start is None:
            self.clock_start = self.sim_now()
        else:
            self.set_clock(speed=self.clock_speed, start=self.clock_start)
        self.spawn("worker")
        self.spawn("web")
        self.spawn("streams")
        self.wait_http(self.web_url + "/healthz", "web")

    def stop(self) -> None:
        """Stop everything that was started (each step on its own, so one
        failure leaves nothing running)."""
        servers = ("streams", "web", "worker", "simulator")
        commands = [n for n in self.processes if n not in servers]
        for name in [*commands, *servers]:
            process = self.processes.get(name)
            if process is not None:
                try:
                    process.stop(timeout=8)
                except Exception:  # the others must stop too
                    process.kill()
        if self._db is not None:
            try:
                self._db.close()
            except Exception:
                pass
        if self._console is not None and self._console.poll() is None:
            self._console.kill()
            self._console.wait(5)
        self.redis.kill()
        self.postgres.destroy()

    def define(self, name: str, *command: str) -> None:
        self.processes[name] = Process(
            name,
            [sys.executable, str(ROOT / "manage.py"), *command],
            self.root / f"{name}.log",
        )

    def spawn(self, name: str) -> Process:
        process = self.processes[name]
        if process.alive():
            raise RuntimeError(f"{name} is already running")
        with process.log.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- chaos: start #{process.starts + 1} at {stamp}\n".encode())
            log.flush()
            process.popen = subprocess.Popen(
                process.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process.starts += 1
        return process

    def kill(self, name: str) -> None:
        process = self.processes[name]
        with process.log.open("ab") as log:
            log.write(b"--- chaos: SIGKILL\n")
        process.kill()

    def dead(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.daemon and not p.alive()]

    def command(self, name: str, *args: str) -> Process:
        """Start a management command beside the servers (e.g. a watched
        `load_history`); its output goes to its own log."""
        self.define(name, *args)
        self.processes[name].daemon = False
        return self.spawn(name)

    def manage(self, *args: str, timeout: float = 180) -> str:
        """Run a management command to its end against the private stack."""
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args[:2])} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def ask(self, op: str, **args) -> dict:
        """Run `tests.chaos.seed.<op>(**args)` in the stack's Django console."""
        if self._console is None or self._console.poll() is not None:
            self._console = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "manage.py"),
                    "shell",
                    "-v",
                    "0",
                    "-c",
                    "from tests.chaos.seed import serve; serve()",
                ],  # fmt: skip
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(self.root / "console.log").open("ab"),
                text=True,
                start_new_session=True,
            )
        self._console.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self._console.stdin.flush()
        ready, _, _ = select.select([self._console.stdout], [], [], 120)
        line = self._console.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(
                f"the console did not answer {op}:\n{self.tail('console')}"
            )
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{op} failed: {answer['error']}")
        return answer

    def wait_http(self, url: str, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.processes[name].alive():
                break
            try:
                urllib.request.urlopen(url, timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer {url}:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 6000, *, compact: bool = False) -> str:
        """The end of a process's log. `compact` drops traceback frames (an
        outage's tracebacks would fill the tail with the same frames)."""
        path = self.processes[name].log if name in self.processes else None
        if name in ("postgres", "redis", "console"):
            path = {"postgres": self.postgres.log, "redis": self.redis.log}.get(
                name, self.root / "console.log"
            )
        if path is None or not path.exists():
            return "(no log)"
        text = path.read_bytes()[-20 * chars :].decode(errors="replace")
        if compact:
            text = "\n".join(
                line for line in text.splitlines() if not line.startswith((" ", "\t"))
            )
        return text[-chars:]

    # --- the simulator ---------------------------------------------------------
    def sim_call(self, path: str, payload: dict | None = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.sim_http + path,
            data=data,
            method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def set_clock(self, *, speed: float, start: datetime) -> None:
        self.sim_call(
            "/_sim/clock",
            {"speed": speed, "start": start.isoformat().replace("+00:00", "Z")},
        )

    def set_faults(self, **faults) -> dict:
        return self.sim_call("/_sim/faults", faults)

    def sim_now(self) -> datetime:
        return datetime.fromisoformat(self.sim_call("/_sim/health")["now"])

    def wait_sim(self, until: datetime) -> None:
        """Sleep until the simulated clock reaches `until`."""
        while True:
            left = (until - self.sim_now()).total_seconds()
            if left <= 0:
                return
            time.sleep(min(max(left / self.clock_speed, 0.05), 2.0))

    def sim_minutes(self, minutes: float) -> None:
        self.wait_sim(self.sim_now() + timedelta(minutes=minutes))

    # --- reading the private database (the test's own connection) -------------
    def query(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        for attempt in range(2):
            try:
                if self._db is None or self._db.closed:
                    self._db = psycopg.connect(self.postgres.url(), autocommit=True)
                return self._db.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self._db = None
                if attempt:
                    raise
        return []


def make_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="tapeline-chaos-"))


def remove_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def trading_day(at: datetime) -> date:
    return at.astimezone(NEW_YORK).date()
