"""The reclaimer (`marketdata.reclaim.work_reclaim`, run by every Dramatiq
worker): dead workers' chunks and lost messages are sent again, gaps
reported while Redis was down are repaired (issue 10, defect 5a), finished
jobs are closed, and nothing is sent twice while its message still waits."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker

from core.reclaim import Reclaimer
from core.redis import key, redis_client
from marketdata.gaps import gap_report
from marketdata.history import load_job_enqueue, load_job_plan
from marketdata.models import ChunkState, Gap, GapState, LoadChunk, LoadJob
from marketdata.reclaim import work_reclaim
from marketdata.tasks import gap_backfill
from tests.plugins.simulator import free_port

pytestmark = pytest.mark.django_db

START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)


def queued(queue: str) -> list[int]:
    """Ids the broker holds messages for in `queue` (waiting or delayed)."""
    client = redis_client()
    bodies = client.hvals(key("dramatiq", queue) + ".msgs") + client.hvals(
        key("dramatiq", queue) + ".DQ.msgs"
    )
    return sorted(json.loads(body)["args"][0] for body in bodies)


def ago(**kwargs) -> datetime:
    return timezone.now() - timedelta(**kwargs)


@pytest.fixture
def job(instruments):
    planned = load_job_plan(
        instruments=[instruments["AAPL"]], provider="simulator", timeframe="1m",
        start=START, end=END,
    )  # fmt: skip
    return planned.job


@pytest.fixture
def enqueue(django_capture_on_commit_callbacks):
    def send(ids: list[int]) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            load_job_enqueue(chunk_ids=ids)

    return send


@pytest.fixture
def dead_broker():
    """A broker whose Redis is not there (nothing listens on the port)."""
    return RedisBroker(url=f"redis://127.0.0.1:{free_port()}/0")


def test_a_dead_workers_chunk_is_handed_out_again(job, settings, enqueue):
    settings.HISTORY_STALE_SECONDS = 120
    jan, feb, mar = job.chunks.order_by("start")
    LoadChunk.objects.filter(id=jan.id).update(
        state=ChunkState.RUNNING,
        heartbeat_at=ago(minutes=10),  # SIGKILLed
    )
    LoadChunk.objects.filter(id=feb.id).update(
        state=ChunkState.RUNNING,
        heartbeat_at=ago(seconds=5),  # alive
    )
    enqueue([mar.id])  # waiting in the queue: its message is there

    report = work_reclaim()
    assert report.stale_chunks == [jan.id] and report.lost_chunks == []
    jan.refresh_from_db()
    assert jan.state == ChunkState.QUEUED and "reclaimed" in jan.error
    assert queued("history") == sorted([jan.id, mar.id])
    assert LoadChunk.objects.get(id=feb.id).state == ChunkState.RUNNING


def test_queued_chunks_whose_messages_were_lost_are_sent_again(job, settings, enqueue):
    settings.HISTORY_RECLAIM_EVERY = 30
    ids = sorted(job.chunks.values_list("id", flat=True))
    enqueue(ids)
    job.chunks.update(heartbeat_at=ago(minutes=5))  # queued a while ago
    # Messages wait in the broker (a long queue): nothing is duplicated.
    assert work_reclaim().lost_chunks == []
    assert queued("history") == ids

    redis_client().flushdb()  # Redis restarted without persistence
    report = work_reclaim()
    assert report.lost_chunks == ids and queued("history") == ids
    # Sent once: the next pass finds the messages waiting.
    assert work_reclaim().lost_chunks == [] and queued("history") == ids


def test_jobs_run_by_their_command_are_left_alone(instruments, settings):
    settings.HISTORY_RECLAIM_EVERY = 30
    for symbol, options in (("MSFT", {"sync": True}), ("NVDA", {})):
        planned = load_job_plan(
            instruments=[instruments[symbol]], provider="simulator", timeframe="1m",
            start=START, end=END, options=options,
        )  # fmt: skip
        planned.job.chunks.update(heartbeat_at=ago(hours=1))
    csv_job = LoadJob.objects.create(
        key="csv", provider="csv", timeframe="1m", start=START, end=END,
        symbols=["MSFT"], state="running",
    )  # fmt: skip
    LoadChunk.objects.create(
        job=csv_job, instrument=instruments["MSFT"], timeframe="1m", start=START,
        end=END, state=ChunkState.QUEUED, heartbeat_at=ago(hours=1),
    )  # fmt: skip
    report = work_reclaim()
    worker_job = LoadJob.objects.exclude(provider="csv").get(options={})
    assert report.lost_chunks == sorted(worker_job.chunks.values_list("id", flat=True))


def test_gaps_reported_while_redis_was_down_are_repaired(
    simulator_settings, instruments, settings, dead_broker,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """They stayed open with 0 attempts for ever: the enqueue failed (or
    raised into the reporter) and nobody sent it again."""
    settings.HISTORY_RECLAIM_EVERY = 30
    btc = instruments["BTC/USD"]
    start = datetime(2024, 5, 6, 14, 0, tzinfo=UTC)
    live_broker, gap_backfill.broker = gap_backfill.broker, dead_broker
    try:
        with django_capture_on_commit_callbacks(execute=True):
            gap = gap_report(
                instrument=btc, start=start, end=start + timedelta(minutes=30),
                source="stream",
            )  # fmt: skip
    finally:
        gap_backfill.broker = live_broker
    gap.refresh_from_db()
    assert (gap.state, gap.attempts) == (GapState.OPEN, 0)
    assert queued("backfill") == []

    Gap.objects.filter(id=gap.id).update(updated_at=ago(minutes=2))
    report = work_reclaim()  # Redis is back
    assert report.lost_gaps == [gap.id] and queued("backfill") == [gap.id]
    gap_backfill.fn(gap.id)  # what the worker does with the message
    gap.refresh_from_db()
    assert gap.state == GapState.REPAIRED and gap.bars_added == 30
    assert work_reclaim().lost_gaps == []


def test_a_repair_whose_worker_died_is_reopened_and_sent(instruments, settings):
    settings.HISTORY_STALE_SECONDS = 120
    gap = gap_report(
        instrument=instruments["ETH/USD"], start=START, end=START + timedelta(hours=1),
        source="stream", repair=False,
    )  # fmt: skip
    Gap.objects.filter(id=gap.id).update(
        state=GapState.REPAIRING, attempts=1, updated_at=ago(minutes=10)
    )
    report = work_reclaim()
    assert report.stale_gaps == [gap.id] and queued("backfill") == [gap.id]
    assert Gap.objects.get(id=gap.id).state == GapState.OPEN


def test_jobs_whose_chunks_all_finished_are_closed(job):
    """The chunk that finished last could not close its job (the database
    went away right then)."""
    job.chunks.update(state=ChunkState.DONE)
    job.chunks.filter(start=START).update(state=ChunkState.SKIPPED)
    assert work_reclaim().jobs_closed == 1
    job.refresh_from_db()
    assert job.state == "done" and job.finished_at is not None


@contextmanager
def broker_away(away):
    """Dramatiq's Redis is away for everyone (the global broker and every actor)."""
    working = dramatiq.get_broker()
    actors = [working.get_actor(name) for name in working.get_declared_actors()]
    dramatiq.set_broker(away)
    for actor in actors:
        actor.broker = away
    try:
        yield
    finally:
        dramatiq.set_broker(working)
        for actor in actors:
            actor.broker = working


def test_the_reclaimer_thread_waits_out_outages_with_one_line_each_way(
    job, dead_broker, caplog
):
    service = "marketdata.reclaim.work_reclaim"
    reclaimer = Reclaimer(services=[service], every=30)
    with caplog.at_level(logging.INFO, logger="core.reclaim"):
        with broker_away(dead_broker):
            for _ in range(3):
                assert reclaimer.once() == {}  # Redis is away: it keeps going
        assert service in reclaimer.once()  # back
        reclaimer.once()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "ConnectionError" in lines[0] and "working again after" in lines[1]
