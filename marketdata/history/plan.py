"""History jobs: a request planned into chunks (instrument × month for
minutes, instrument × year for days), the chunks sent to the workers, and the
job closed once every chunk has finished."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.logs import cause
from marketdata.models import (
    ChunkState,
    Instrument,
    JobState,
    LoadChunk,
    LoadJob,
    Timeframe,
)
from marketdata.transient import is_transient

logger = logging.getLogger(__name__)


def _stale_after() -> timedelta:
    """A running chunk whose heartbeat is older than this is presumed dead."""
    return timedelta(seconds=settings.HISTORY_STALE_SECONDS)


CHUNK_MONTHS = 1  # minutes: one chunk per calendar month
FINISHED = (ChunkState.DONE, ChunkState.SKIPPED, ChunkState.FAILED)


def _next_boundary(at: datetime, timeframe: str) -> datetime:
    months = 12 if timeframe == Timeframe.DAY else CHUNK_MONTHS
    month = (at.month - 1) // months * months + months  # 0-based month after
    return datetime(at.year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def chunk_ranges(
    *, timeframe: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Calendar months (UTC) for minutes, calendar years for days, clipped to
    [start, end)."""
    ranges = []
    lo = start
    while lo < end:
        hi = min(_next_boundary(lo, timeframe), end)
        ranges.append((lo, hi))
        lo = hi
    return ranges


def job_key(
    *,
    provider: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    symbols: Iterable[str],
) -> str:
    text = "|".join(
        [provider, timeframe, start.isoformat(), end.isoformat(), *sorted(symbols)]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:64]


@dataclass(frozen=True, slots=True)
class PlannedJob:
    job: LoadJob
    resumed: bool
    to_run: list[int]


def load_job_plan(
    *,
    instruments: Iterable[Instrument],
    provider: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    options: dict | None = None,
) -> PlannedJob:
    """Create the job and its chunks, or resume the unfinished job of the same
    request: finished chunks stay, failed and dead ones run again."""
    instruments = sorted(instruments, key=lambda i: i.symbol)
    symbols = [i.symbol for i in instruments]
    key = job_key(
        provider=provider, timeframe=timeframe, start=start, end=end, symbols=symbols
    )
    now = timezone.now()
    with transaction.atomic():
        job = (
            LoadJob.objects.select_for_update()
            .filter(key=key)
            .exclude(state=JobState.DONE)
            .order_by("-created_at")
            .first()
        )
        resumed = job is not None
        if job is None:
            job = LoadJob.objects.create(
                key=key,
                provider=provider,
                timeframe=timeframe,
                start=start,
                end=end,
                symbols=symbols,
                options=options or {},
            )
            ranges = chunk_ranges(timeframe=timeframe, start=start, end=end)
            LoadChunk.objects.bulk_create(
                LoadChunk(
                    job=job,
                    instrument=instrument,
                    timeframe=timeframe,
                    start=lo,
                    end=hi,
                )
                for instrument in instruments
                for lo, hi in ranges
            )
        runnable = Q(state__in=[ChunkState.PENDING, ChunkState.FAILED]) | Q(
            state__in=[ChunkState.QUEUED, ChunkState.RUNNING],
            heartbeat_at__lt=now - _stale_after(),
        )
        if resumed:
            # Queued chunks without a heartbeat were never picked up: their
            # messages may be lost with a flushed broker, so send them again.
            runnable |= Q(state=ChunkState.QUEUED, heartbeat_at__isnull=True)
        to_run = list(job.chunks.filter(runnable).values_list("id", flat=True))
        # A queued chunk's heartbeat is when it was last handed out: the
        # reclaimer re-sends those nobody touched for a while.
        job.chunks.filter(id__in=to_run).update(
            state=ChunkState.QUEUED, heartbeat_at=now, error=""
        )
        job.state = JobState.RUNNING
        job.finished_at = None
        job.save(update_fields=["state", "finished_at"])
    return PlannedJob(job=job, resumed=resumed, to_run=to_run)


def load_job_enqueue(*, chunk_ids: Iterable[int]) -> None:
    """Send one actor message per chunk once the transaction commits."""
    from marketdata.tasks import load_chunk

    ids = list(chunk_ids)

    def send() -> None:
        for sent, chunk_id in enumerate(ids):
            try:
                load_chunk.send(chunk_id)
            except Exception as exc:  # the chunks are queued in the database
                logger.warning(
                    "%d chunk(s) not sent to the workers (%s): they stay queued and "
                    "the workers' reclaimer sends them once the broker answers",
                    len(ids) - sent,
                    cause(exc),
                )
                return

    transaction.on_commit(send)


def _job_refresh(job_id: int) -> None:
    """Close the job once every chunk has finished: done when all are done
    or skipped, failed when some failed for good."""
    open_chunks = LoadChunk.objects.filter(job_id=job_id).exclude(state__in=FINISHED)
    if open_chunks.exists():
        return
    failed = LoadChunk.objects.filter(job_id=job_id, state=ChunkState.FAILED).exists()
    LoadJob.objects.filter(id=job_id).exclude(
        state__in=[JobState.DONE, JobState.FAILED]
    ).update(
        state=JobState.FAILED if failed else JobState.DONE, finished_at=timezone.now()
    )


def load_jobs_close_finished() -> int:
    """Close every unfinished job whose chunks have all finished (the chunk
    that finished last could not close it: the database went away)."""
    ids = list(
        LoadJob.objects.filter(state__in=[JobState.PENDING, JobState.RUNNING])
        .exclude(
            chunks__state__in=[
                ChunkState.PENDING,
                ChunkState.QUEUED,
                ChunkState.RUNNING,
            ]
        )
        .values_list("id", flat=True)
    )
    for job_id in ids:
        _job_refresh(job_id)
    return len(ids)


def _job_refresh_quietly(job_id: int) -> None:
    try:
        _job_refresh(job_id)
    except Exception as exc:  # the reclaimer closes finished jobs
        if not is_transient(exc):
            raise
        logger.info("job %s not closed yet (%s)", job_id, cause(exc))
