"""The seed workload end to end: 15 instruments x 5 years of regular-session
1-minute bars (~7.4 million bars) from the simulator's Alpaca REST, through
`load_history` and 2 Dramatiq worker processes into PostgreSQL.

    python -m bench.bench_history [--years 5] [--instruments 15] [--processes 2]

Starts `simulate_exchange --hours nyse` and `rundramatiq` as subprocesses,
clears the instruments' bars, runs `load_history` and reports total time and
bars/s; then runs it again (everything covered) and verifies the counts
against the simulator's truth. Peer: the 5,600 bars/s the original plan
expected (2-4 hours for this workload). Target: under 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench._django import setup

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = [
    "AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "TSLA", "AMD",
    "SPY", "QQQ", "DIA", "IWM", "SMH", "JPM", "BAC",
]  # fmt: skip
PLAN_BARS_PER_SECOND = 5_600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(args: list[str], env: dict) -> tuple[subprocess.Popen, object]:
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return process, log


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp) after the command name
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--instruments", type=int, default=15)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    setup()
    from django.conf import settings
    from django.core.management import call_command

    from marketdata.models import Bar, BarRollup, Instrument, LoadJob
    from marketdata.services import instruments_upsert
    from marketdata.universe import universe_rows
    from simulator.prices import minute_bars

    instruments_upsert(rows=universe_rows())
    symbols = SYMBOLS[: args.instruments]
    instruments = list(Instrument.objects.filter(symbol__in=symbols))
    end = datetime(2025, 1, 1, tzinfo=UTC)
    start = datetime(end.year - args.years, 1, 1, tzinfo=UTC)
    Bar.objects.filter(instrument__in=instruments).delete()
    BarRollup.objects.filter(instrument__in=instruments).delete()
    LoadJob.objects.all().delete()

    port = free_port()
    seed = settings.SIMULATOR_SEED
    db = settings.DATABASES["default"]
    env = os.environ.copy()
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        TAPELINE_PROVIDER="simulator",
        SIMULATOR_PORT=str(port),
        SIMULATOR_SEED=str(seed),
        LOG_LEVEL="WARNING",
    )
    settings.TAPELINE_PROVIDER = "simulator"
    from core.redis import redis_client

    redis_client().flushdb()
    simulator, sim_log = spawn(
        [
            "simulate_exchange",
            "--port",
            str(port),
            "--seed",
            str(seed),
            "--hours",
            "nyse",
        ],
        env,
    )
    worker, worker_log = spawn(
        [
            "rundramatiq",
            "--processes",
            str(args.processes),
            "--threads",
            str(args.threads),
        ],
        env,
    )
    try:
        time.sleep(3)
        command = [
            "load_history", "--symbols", ",".join(symbols),
            "--start", f"{start:%Y-%m-%d}", "--end", f"{end:%Y-%m-%d}", "--poll", "1",
        ]  # fmt: skip
        print(
            f"seed workload: {len(symbols)} instruments x {args.years} years, "
            f"{args.processes} worker processes x {args.threads} threads"
        )
        cpu_before = {
            "simulator": group_cpu_seconds(simulator.pid),
            "workers": group_cpu_seconds(worker.pid),
            "load_history": time.process_time(),
        }
        started = time.perf_counter()
        call_command(*command)
        seconds = time.perf_counter() - started
        cpu = {
            "simulator": group_cpu_seconds(simulator.pid) - cpu_before["simulator"],
            "workers": group_cpu_seconds(worker.pid) - cpu_before["workers"],
            "load_history": time.process_time() - cpu_before["load_history"],
        }
        stored = Bar.objects.filter(instrument__in=instruments).count()
        started = time.perf_counter()
        call_command(*command)
        rerun = time.perf_counter() - started
    finally:
        stop(worker)
        stop(simulator)
    truth = sum(
        len(minute_bars(s, start, end, seed=seed, hours="nyse")) for s in symbols
    )
    rate = stored / seconds
    print()
    print(
        f"bars stored:       {stored:,} (simulator truth {truth:,}: {'equal' if stored == truth else 'DIFFERENT'})"
    )
    print(f"total time:        {seconds:.1f} s  ({rate:,.0f} bars/s)  target < 120 s")
    print(
        f"vs the plan:       {rate / PLAN_BARS_PER_SECOND:.1f}x its {PLAN_BARS_PER_SECOND:,} bars/s "
        f"({stored / PLAN_BARS_PER_SECOND / 3600:.1f} h for this workload)"
    )
    print(f"second run:        {rerun:.1f} s (everything covered, nothing fetched)")
    print(
        "CPU seconds:       "
        + ", ".join(f"{name} {value:.1f}" for name, value in cpu.items())
        + f" (PostgreSQL not counted); load average {os.getloadavg()[0]:.1f}"
    )
    per_bar = {name: value / max(1, stored) * 1e6 for name, value in cpu.items()}
    print(
        "CPU per bar:       "
        + ", ".join(f"{name} {value:.1f} us" for name, value in per_bar.items())
    )
    if stored != truth:
        worker_log.seek(0)
        print(worker_log.read().decode(errors="replace")[-3000:])
        sys.exit(1)


if __name__ == "__main__":
    main()
