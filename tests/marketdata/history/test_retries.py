"""History chunks survive transient failures (issue 10, defect 2): a provider
5xx/429 or an outage queues the chunk again and asks for a retry after a
back-off; it never ends the chunk as failed. Permanent errors still do.
Claims are atomic, so duplicate messages and zombie workers are harmless."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dramatiq
import pytest
from django.utils import timezone

from marketdata.events import BarEvent
from marketdata.history import (
    load_chunk_claim,
    load_chunk_run,
    load_job_plan,
    load_job_run_sync,
)
from marketdata.models import Bar, ChunkState, LoadChunk
from marketdata.providers.base import ProviderError, RateLimitedError
from marketdata.tasks import load_chunk
from simulator.prices import minute_bars
from tests.marketdata.history.test_history_units import ListProvider

pytestmark = pytest.mark.django_db

FEB, MAR = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)


def bars(symbol: str, start: datetime, end: datetime) -> list[BarEvent]:
    truth = minute_bars(symbol, start, end, seed=7, hours="nyse")
    columns = (truth.o, truth.h, truth.l, truth.c, truth.volume)
    return [
        BarEvent(
            symbol=symbol,
            ts=datetime.fromtimestamp(int(t), tz=UTC),
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=v,
            provider="flaky",
        )  # fmt: skip
        for t, *ohlcv in zip(truth.ts, *columns, strict=True)
        for o, h, lo, c, v in [[Decimal(str(x)) for x in ohlcv]]
    ]


class FlakyProvider(ListProvider):
    """Fails with the given errors first (one per call), then serves pages."""

    name = "flaky"
    failures: list[Exception] = []

    def __init__(self, **kwargs):
        super().__init__([], **kwargs)

    def fetch_bars(self, *, symbol, start, end, timeframe="1m") -> Iterator[list]:
        if FlakyProvider.failures:
            raise FlakyProvider.failures.pop(0)
        rows = bars(symbol, start, end)
        for i in range(0, len(rows), 2000):
            yield rows[i : i + 2000]


@pytest.fixture
def flaky(monkeypatch):
    """Registers "flaky" as a provider name so the actor's own provider
    routing builds it (with the Redis-shared rate limiter)."""
    from marketdata import providers

    monkeypatch.setitem(
        providers.PROVIDERS, "flaky", f"{__name__}.{FlakyProvider.__name__}"
    )
    FlakyProvider.failures = []
    yield FlakyProvider
    FlakyProvider.failures = []


def plan(instrument, provider="flaky"):
    planned = load_job_plan(
        instruments=[instrument], provider=provider, timeframe="1m", start=FEB, end=MAR
    )
    (chunk_id,) = planned.to_run
    return planned.job, chunk_id


def test_a_provider_5xx_queues_the_chunk_again_instead_of_failing_it(
    instruments, flaky
):
    aapl = instruments["AAPL"]
    job, chunk_id = plan(aapl)
    flaky.failures = [ProviderError("flaky: HTTP 503", permanent=False, status=503)]
    outcome = load_chunk_run(chunk_id=chunk_id)
    assert outcome.retry and outcome.state == ChunkState.QUEUED
    chunk = LoadChunk.objects.get(id=chunk_id)
    assert chunk.state == ChunkState.QUEUED and "HTTP 503" in chunk.error
    job.refresh_from_db()
    assert job.state == "running"  # not finished, and certainly not failed

    done = load_chunk_run(chunk_id=chunk_id)  # the retried message
    assert done.state == ChunkState.DONE and not done.retry
    assert Bar.objects.filter(instrument=aapl).count() == len(bars("AAPL", FEB, MAR))
    job.refresh_from_db()
    assert job.state == "done"
    assert LoadChunk.objects.get(id=chunk_id).attempts == 2


def test_the_actor_asks_dramatiq_for_a_retry_honouring_retry_after(instruments, flaky):
    _, chunk_id = plan(instruments["MSFT"])
    flaky.failures = [RateLimitedError("flaky: HTTP 429", retry_after=7)]
    with pytest.raises(dramatiq.Retry) as raised:
        load_chunk.fn(chunk_id)
    assert raised.value.delay == 7000
    # Retried however many times it takes; other exceptions are not retried
    # (they were recorded on the chunk).
    retry_when = load_chunk.options["retry_when"]
    assert retry_when(10_000, raised.value)
    assert not retry_when(0, ValueError("bug"))
    assert LoadChunk.objects.get(id=chunk_id).state == ChunkState.QUEUED

    load_chunk.fn(chunk_id)  # no exception: done
    assert LoadChunk.objects.get(id=chunk_id).state == ChunkState.DONE


def test_permanent_errors_still_fail_the_chunk_with_the_reason(instruments, flaky):
    from marketdata.providers.base import AuthenticationError

    job, chunk_id = plan(instruments["AAPL"])
    flaky.failures = [AuthenticationError("flaky: HTTP 401: bad key")]
    load_chunk.fn(chunk_id)  # recorded, not retried
    chunk = LoadChunk.objects.get(id=chunk_id)
    assert chunk.state == ChunkState.FAILED and "bad key" in chunk.error
    job.refresh_from_db()
    assert job.state == "failed"
    # A duplicate message does not run a failed chunk again (a resume does).
    assert load_chunk_run(chunk_id=chunk_id).state == ChunkState.FAILED


def test_sync_runs_wait_out_transient_failures(instruments, flaky):
    job, chunk_id = plan(instruments["NVDA"])
    flaky.failures = [
        ProviderError("flaky: HTTP 502", permanent=False, status=502),
        ProviderError("flaky: read timed out", permanent=False),
    ]
    outcomes, waits = [], []
    load_job_run_sync(
        job=job, chunk_ids=[chunk_id], on_chunk=outcomes.append, sleep=waits.append
    )
    assert [o.retry for o in outcomes] == [True, True, False]
    assert len(waits) == 2 and all(w > 0 for w in waits)
    job.refresh_from_db()
    assert job.state == "done"
    assert Bar.objects.filter(instrument=instruments["NVDA"]).count() == len(
        bars("NVDA", FEB, MAR)
    )


def test_a_duplicate_message_does_nothing_while_the_chunk_runs(instruments):
    _, chunk_id = plan(instruments["AAPL"], provider="listed")
    assert load_chunk_claim(chunk_id=chunk_id) is not None  # a worker is on it
    called = []
    outcome = load_chunk_run(
        chunk_id=chunk_id, provider_factory=lambda *a: called.append(a)
    )
    assert outcome.state == ChunkState.RUNNING and not outcome.retry and not called


def test_a_worker_whose_chunk_was_taken_over_stops_writing(instruments, settings):
    """Its heartbeat went stale (a long stall), the chunk was handed out
    again: the old worker's next page write finds the claim gone and stops,
    and never marks the chunk finished."""
    settings.HISTORY_STALE_SECONDS = 60
    aapl = instruments["AAPL"]
    _, chunk_id = plan(aapl, provider="listed")
    rows = bars("AAPL", FEB, MAR)

    def pages():
        yield rows[:100]
        LoadChunk.objects.filter(id=chunk_id).update(
            heartbeat_at=timezone.now() - timedelta(minutes=5)
        )
        assert (
            load_chunk_claim(chunk_id=chunk_id) is not None
        )  # another worker takes it over
        yield rows[100:]

    stalled = ListProvider(pages())
    outcome = load_chunk_run(chunk_id=chunk_id, provider_factory=lambda *a: stalled)
    assert outcome.state == ChunkState.RUNNING
    chunk = LoadChunk.objects.get(id=chunk_id)
    assert chunk.state == ChunkState.RUNNING and chunk.attempts == 2
    assert chunk.pages == 1  # the second page was not counted by the old worker
