"""`manage.py start_streams` as a real process: signals, exit codes, output."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from django.conf import settings

from marketdata.services import watchlist_create

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.transactional,
]


def start_streams(simulator, *args, **env_overrides) -> subprocess.Popen:
    database = settings.DATABASES["default"]
    env = os.environ.copy()
    env.update(
        DEBUG="1",
        DATABASE_URL=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        TAPELINE_PROVIDER="simulator",
        TAPELINE_CRYPTO_PROVIDER="",
        SIMULATOR_HOST=simulator.host,
        SIMULATOR_PORT=str(simulator.port),
        SIMULATOR_KEY_ID=simulator.key_id,
        SIMULATOR_SECRET=simulator.secret,
    )
    env.update(env_overrides)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "start_streams", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


class Lines:
    """Collect a pipe's lines in a thread (the pipe must never fill up)."""

    def __init__(self, pipe) -> None:
        self.lines: list[bytes] = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe) -> None:
        for line in iter(pipe.readline, b""):
            self.lines.append(line)

    def text(self) -> str:
        return b"".join(self.lines).decode(errors="replace")


def test_sigterm_stops_within_5_seconds_after_printing_and_recording(
    simulator, user, instruments, tmp_path
):
    watchlist_create(owner=user, name="Mine", symbols=["BTC/USD", "ETH/USD"])
    record = tmp_path / "feed.jsonl.gz"
    process = start_streams(simulator, "--print-events", "--record", str(record))
    out, err = Lines(process.stdout), Lines(process.stderr)
    try:
        deadline = time.monotonic() + 30
        while len(out.lines) < 10 and time.monotonic() < deadline:
            assert process.poll() is None, err.text()
            time.sleep(0.1)
        assert len(out.lines) >= 10, err.text()
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(10)
        took = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            process.kill()
    out.thread.join(2)
    assert code == 0, err.text()
    assert took < 5.0, took
    events = [orjson.loads(line) for line in out.lines]
    assert {e["kind"] for e in events} <= {"trade", "quote", "bar", "status"}
    assert {e["symbol"] for e in events} <= {"BTC/USD", "ETH/USD"}
    [recording] = list(tmp_path.glob("feed.*.jsonl.gz"))
    with gzip.open(recording, "rt") as handle:
        frames = [orjson.loads(line) for line in handle]
    assert len(frames) >= 3
    assert {f["provider"] for f in frames} == {"simulator"}
    assert all("/v1beta3/crypto/us" in f["url"] for f in frames)


def test_wrong_credentials_exit_non_zero_with_one_clear_line(
    simulator, user, instruments
):
    watchlist_create(owner=user, name="Mine", symbols=["AAPL"])
    process = start_streams(simulator, SIMULATOR_SECRET="wrong-secret")
    try:
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read().decode()
    assert code != 0
    failures = [line for line in stderr.splitlines() if "authentication failed" in line]
    assert len(failures) == 1, stderr
    assert "Check the simulator credentials" in failures[0]
    assert "wrong-secret" not in stderr  # secrets are never logged


def test_invalid_shard_is_a_command_error(simulator, user, instruments):
    process = start_streams(simulator, "--shard", "3/2")
    code = process.wait(30)
    assert code != 0
    assert b"Invalid shard" in process.stderr.read()


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--provider", "alpaca,alpacca"), {}),
        ((), {"TAPELINE_CRYPTO_PROVIDERS": "alpaca,binanse"}),
    ],
)
def test_unknown_provider_names_exit_2_with_one_clear_line(
    simulator, user, instruments, args, env
):
    process = start_streams(simulator, *args, **env)
    code = process.wait(30)
    stderr = process.stderr.read().decode()
    assert code == 2, stderr
    [line] = [line for line in stderr.splitlines() if line.strip()]
    assert "unknown provider(s):" in line and "known: alpaca, binance" in line
