"""Multi-year loads from the simulator's REST through a real Dramatiq worker on
the real Redis broker: exact counts, idempotent re-runs, resume after a crash,
injected 429s and 500s."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from core.redis import redis_client
from marketdata.models import Bar, ChunkState, LoadJob
from simulator.prices import minute_bars

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def truth(symbol: str, start: datetime, end: datetime, sim) -> int:
    hours = "nyse" if "/" not in symbol else "always"
    return len(minute_bars(symbol, start, end, seed=sim.seed, hours=hours))


def stored(instrument) -> int:
    return Bar.objects.filter(instrument=instrument, timeframe="1m").count()


def wait_for(predicate, timeout: float, what: str, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(
        f"timed out waiting for {what}\n{worker.output() if worker else ''}"
    )


def test_multi_year_load_through_worker_then_rerun_adds_nothing(
    simulator_process, history_worker, instruments, capsys
):
    sim = simulator_process("--hours", "nyse")
    worker = history_worker(sim)
    args = [
        "--symbols",
        "AAPL,SPY",
        "--start",
        "2022-11-01",
        "--end",
        "2024-02-01",
        "--poll",
        "0.2",
    ]
    call_command("load_history", *args)
    start, end = datetime(2022, 11, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    job = LoadJob.objects.get()
    assert job.state == "done", worker.output()
    assert job.chunks.count() == 2 * 15
    assert set(job.chunks.values_list("state", flat=True)) == {ChunkState.DONE}
    for symbol in ("AAPL", "SPY"):
        expected = truth(symbol, start, end, sim)
        assert expected > 300 * 390  # 15 months of regular sessions
        assert stored(instruments[symbol]) == expected
    out = capsys.readouterr().out
    assert "chunks" in out and "bars added" in out

    call_command("load_history", *args)
    rerun = LoadJob.objects.latest("created_at")
    assert rerun.id != job.id and rerun.state == "done"
    assert set(rerun.chunks.values_list("state", flat=True)) == {ChunkState.SKIPPED}
    assert stored(instruments["AAPL"]) == truth("AAPL", start, end, sim)


def test_interrupted_load_resumes_and_completes(
    simulator_process, history_worker, instruments, settings
):
    settings.HISTORY_STALE_SECONDS = 2
    sim = simulator_process("--hours", "nyse")
    worker = history_worker(sim, threads=1)
    args = ["--symbols", "MSFT,QQQ", "--start", "2021-01-01", "--end", "2023-01-01"]
    call_command("load_history", *args, "--no-wait")
    job = LoadJob.objects.get()

    def some_done() -> bool:
        return job.chunks.filter(state=ChunkState.DONE).count() >= 3

    wait_for(some_done, 120, "a few chunks", worker)
    worker.kill()  # crash mid-job ...
    redis_client().flushdb()  # ... and lose every queued message with it
    unfinished = job.chunks.exclude(state=ChunkState.DONE).count()
    assert unfinished > 0, "the job finished before the crash; nothing to resume"

    time.sleep(2.5)  # let the killed worker's heartbeats go stale
    history_worker(sim)
    call_command("load_history", *args, "--poll", "0.2")
    assert LoadJob.objects.count() == 1  # resumed, not restarted
    job.refresh_from_db()
    assert job.state == "done"
    start, end = datetime(2021, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC)
    for symbol in ("MSFT", "QQQ"):
        assert stored(instruments[symbol]) == truth(symbol, start, end, sim)
    assert sum(job.chunks.values_list("bars_added", flat=True)) == sum(
        truth(s, start, end, sim) for s in ("MSFT", "QQQ")
    )


def test_injected_429_and_500_slow_the_load_but_lose_nothing(
    simulator_process, history_worker, instruments
):
    sim = simulator_process(
        "--hours", "nyse", "--rest-429-rate", "0.3", "--rest-500-rate", "0.2"
    )
    worker = history_worker(sim)
    call_command(
        "load_history", "--symbols", "BTC/USD,NVDA", "--start", "2024-01-20",
        "--end", "2024-03-10", "--poll", "0.2",
    )  # fmt: skip
    job = LoadJob.objects.get()
    assert job.state == "done", worker.output()
    start, end = datetime(2024, 1, 20, tzinfo=UTC), datetime(2024, 3, 10, tzinfo=UTC)
    for symbol in ("BTC/USD", "NVDA"):
        assert stored(instruments[symbol]) == truth(symbol, start, end, sim)
    # The faults really happened: the adapter logged its retries in the worker.
    log = worker.output()
    assert "HTTP 429" in log and "HTTP 500" in log
    assert not job.chunks.exclude(state=ChunkState.DONE).exists()
