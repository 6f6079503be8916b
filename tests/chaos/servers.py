"""The servers a chaos test may break: a private PostgreSQL cluster and a
private Redis (never the shared ones on 5432/6379), and processes that run
in their own process group so a kill takes their children with them."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

DB_NAME = "tapeline_chaos"


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian layout)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]),
    )
    return Path(found[-1]).parent if found else None


def missing_tools() -> str | None:
    """Why a private stack cannot be built here, or None."""
    if postgres_bin() is None:
        return "PostgreSQL server binaries (initdb) are not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser to start PostgreSQL as postgres"
    return None


# --- PostgreSQL and Redis ------------------------------------------------------------
class PrivatePostgres:
    """A throw-away cluster. `crash()` is `pg_ctl -m immediate stop` (no
    shutdown checkpoint, connections cut), `start()` brings it back."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "pgdata"
        self.log = root / "postgres.log"
        self.bin = postgres_bin()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb refuses root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, check=check, capture_output=True, text=True, timeout=120
        )

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            # No fsync: only an OS crash loses what fsync keeps, and the suite
            # crashes the server, not the machine. Commits stay synchronous:
            # a crash must not undo what a client was told is committed.
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (
            self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode
            == 0
        )

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self._run(
                "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                check=False,
            )  # fmt: skip

    def url(self, database: str = DB_NAME) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")


class PrivateRedis:
    """A Redis server without persistence: `kill()` then `start()` is a
    restart that lost everything (queues, counters, rate limits)."""

    def __init__(self, root: Path, port: int) -> None:
        self.port = port
        self.log = root / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.log),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if _redis_ping(self.port):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


# --- processes -----------------------------------------------------------------------
@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen | None = None
    starts: int = 0
    daemon: bool = True  # a server that must keep running (not a command)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group: a crash, nothing flushed."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass
