"""The whole stack for browser tests: the exchange simulator, the stream worker
(`start_streams`) and Daphne serving the site, each a subprocess using this
test run's database and Redis, driven by Playwright on Debian's Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from tests.plugins.simulator import SimulatorProcess, free_port, spawn_simulator

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "e2e-pass-123"
WATCHLISTS = {
    "Crypto": ["BTC/USD", "ETH/USD", "SOL/USD"],
    "Tech": ["AAPL", "MSFT", "NVDA", "AMD"],
}
HISTORY_SYMBOLS = "BTC/USD,ETH/USD,SOL/USD,AAPL,MSFT,NVDA,AMD"


def pytest_collection_modifyitems(config, items):
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (make chromium)")
        for item in items:
            if "e2e" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


def database_url() -> str:
    """This run's test database (the connection's settings, not the project's)."""
    from django.db import connection

    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@contextmanager
def database_access(blocker):
    """Playwright's sync API keeps an event loop running in this thread, so
    Django's async-safety check needs lifting for the test's own ORM calls
    (they run before and after the browser work, never concurrently)."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with blocker.unblock():
            yield
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def ensure_test_database(django_db_blocker) -> None:
    """pytest-django sets databases up only for tests that ask for `db`; the
    browser tests reach the database through the servers instead."""
    from django.db import connection
    from django.test.utils import setup_databases

    # Set up once (pytest-django's `django_db_setup` usually has): comparing
    # with `_get_test_db_name()` would prefix "test_" again on every module.
    if not connection.settings_dict["NAME"].startswith("test_"):
        with database_access(django_db_blocker):
            setup_databases(
                verbosity=0, interactive=False, keepdb=True, aliases={"default"}
            )
    assert connection.settings_dict["NAME"].startswith("test_"), "not a test database"


@dataclass
class Stack:
    env: dict
    simulator: SimulatorProcess
    web_port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = self.logs.get(name) or tempfile.TemporaryFile()
        self.logs[name] = log
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        log = self.logs[name]
        log.seek(0)
        return log.read().decode(errors="replace")[-3000:]

    def start_web(self) -> None:
        self.spawn(
            "web",
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.web_port),
            "core.asgi:application",
        )
        self.wait_web()

    def wait_web(self) -> None:
        """Until the web process answers `/healthz` (30 s at most)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2)
                return
            except OSError:
                if self.processes["web"].poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError("daphne did not start:\n" + self.log("web"))

    def ensure_web(self) -> None:
        web = self.processes.get("web")
        if web is None or web.poll() is not None:
            self.start_web()

    def stop(self, name: str, *, kill: bool = False) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        if kill:  # a crash: sockets drop at once, no graceful close
            process.kill()
            process.wait(5)
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, request):
    """Users with watchlists and a position, a day of simulator history, then
    the simulator, `start_streams` and Daphne as subprocesses. A test module's
    `STACK_ENV` dict adds to the processes' environment; `STACK_HISTORY =
    False` skips the history."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from core.redis import redis_client
    from marketdata.models import Instrument, Position
    from marketdata.services import instruments_upsert, watchlist_create
    from marketdata.universe import universe_rows

    ensure_test_database(django_db_blocker)
    redis_client().flushdb()  # this run's Redis database; earlier workers' health too
    simulator = spawn_simulator("--hours", "always", "--rate", "4")
    env = {
        **os.environ,
        "DEBUG": "1",
        "BROWSER_TEST_HOOKS": "1",  # window.tapelineMarket, tapelineChart, ...
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "TAPELINE_PROVIDER": "simulator",
        "SIMULATOR_HOST": "127.0.0.1",
        "SIMULATOR_PORT": str(simulator.port),
        "SIMULATOR_SEED": str(simulator.seed),
        "LOG_LEVEL": "WARNING",
        **getattr(request.module, "STACK_ENV", {}),
    }
    stack = Stack(env=env, simulator=simulator, web_port=free_port())
    User = get_user_model()
    try:
        with database_access(django_db_blocker):
            if not Instrument.objects.exists():
                instruments_upsert(rows=universe_rows())
            User.objects.filter(username__in=["e2e-trader", "e2e-ops"]).delete()
            # PBKDF2, the hasher Daphne (the project's settings) checks against.
            password = make_password(PASSWORD, hasher="pbkdf2_sha256")
            trader = User.objects.create(username="e2e-trader", password=password)
            User.objects.create(
                username="e2e-ops", password=password, is_staff=True, is_superuser=True
            )
            for name, symbols in WATCHLISTS.items():
                watchlist_create(owner=trader, name=name, symbols=symbols)
            Position.objects.create(
                owner=trader,
                instrument=Instrument.objects.get(symbol="BTC/USD"),
                quantity=2,
                average_cost=50000,
            )
        start = (timezone.now() - timedelta(days=2)).date().isoformat()
        # A module whose tests need no stored bars sets STACK_HISTORY = False.
        history = getattr(request.module, "STACK_HISTORY", True)
        for timeframe in ("1d", "1m") if history else ():
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "load_history",
                    "--sync",
                    "--timeframe",
                    timeframe,
                    "--start",
                    start if timeframe == "1m" else "2026-01-01",
                    "--symbols",
                    HISTORY_SYMBOLS,
                ],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                timeout=180,
            )
        stack.spawn("streams", "manage.py", "start_streams")
        stack.start_web()
        # Wait until the worker publishes (snapshots appear in Redis).
        from streaming.snapshots import snapshots_get

        # ...and keeps publishing: past its start-up work, BTC/USD's seq has
        # moved on a few times, so the first test sees a flowing feed.
        deadline = time.monotonic() + 90
        first_seq = None
        while time.monotonic() < deadline:
            if stack.processes["streams"].poll() is not None:
                raise RuntimeError("start_streams exited:\n" + stack.log("streams"))
            doc = snapshots_get(symbols=["BTC/USD"]).get("BTC/USD")
            if doc is not None:
                if first_seq is None:
                    first_seq = doc["seq"]
                elif doc["seq"] >= first_seq + 5:
                    break
            time.sleep(0.25)
        else:
            raise RuntimeError(
                "the stream worker is not publishing:\n" + stack.log("streams")
            )
        yield stack
    finally:
        for name in list(stack.processes):
            stack.stop(name)
        simulator.stop()
        redis_client().flushdb()
        with database_access(django_db_blocker):
            # Leave the test database as a transactional test would: empty.
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(autouse=True)
def _web_running(request):
    """A test that stopped the web server and failed must not take the
    following tests down with it."""
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").ensure_web()
    yield


@pytest.fixture
def login(stack):
    def log_in(page, username: str = "e2e-trader") -> None:
        page.goto(stack.url + "/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(stack.url + "/")

    return log_in


@pytest.fixture
def docs_dir() -> Path:
    """Where screenshots go: `docs/` (the README's) with TAPELINE_SCREENSHOTS=1,
    else `test-results/` so a test run leaves the tracked files alone."""
    folder = "docs" if os.environ.get("TAPELINE_SCREENSHOTS") == "1" else "test-results"
    path = ROOT / folder
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _flush_redis():
    """The live stack owns Redis while these tests run: no flushing under it."""
    yield
