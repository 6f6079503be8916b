"""Historical bar loading: jobs split into chunks (instrument × month for
minutes, instrument × year for days), each run by one Dramatiq actor call or
in-process with `--sync`.

A chunk claims itself (an atomic UPDATE: duplicate messages are no-ops),
checks coverage (a finished chunk of an earlier job, or every expected bar
already stored, `marketdata.coverage`, means nothing is fetched), pages
through the provider's REST history behind the Redis-shared rate limit,
drops invalid bars (counted, with examples) and stores the rest with COPY +
`INSERT … ON CONFLICT DO NOTHING`, so overlaps and re-runs are harmless.
Progress is written per page (the heartbeat). A transient failure (database,
Redis, provider 5xx/429, network) puts the chunk back in the queue and is
retried with back-off, never recorded as a failure; a worker that dies
leaves a stale heartbeat. `marketdata.reclaim` describes how both end done
without anyone running anything again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import Least
from django.utils import timezone

from marketdata.coverage import Coverage, range_coverage
from marketdata.events import BarEvent
from marketdata.models import (
    Bar,
    BarOrigin,
    BarRollup,
    ChunkState,
    Instrument,
    JobState,
    LoadChunk,
    LoadJob,
    Timeframe,
)
from marketdata.providers import serves_extended_hours
from marketdata.providers.base import Provider, ProviderError
from marketdata.rollups import rollups_refresh
from marketdata.services import bars_upsert
from marketdata.transient import (
    is_database_error,
    is_transient,
    one_line,
    retry_after_of,
    retry_delay,
    warn_limited,
)

logger = logging.getLogger(__name__)


def _stale_after() -> timedelta:
    """A running chunk whose heartbeat is older than this is presumed dead."""
    return timedelta(seconds=getattr(settings, "HISTORY_STALE_SECONDS", 180))


# Data this close to "now" may still change at the provider: not "covered".
SETTLE = timedelta(minutes=15)
MAX_ATTEMPTS = 32767  # LoadChunk.attempts is a smallint
CHUNK_MONTHS = 1  # minutes: one chunk per calendar month
INVALID_EXAMPLES = 5
MAX_PRICE = Decimal("999999999999.99999999")  # numeric(20, 8)
FINISHED = (ChunkState.DONE, ChunkState.SKIPPED, ChunkState.FAILED)

ProviderFactory = Callable[[str, Instrument], Provider]


# --- validation -----------------------------------------------------------------
def bar_problem(bar: BarEvent, *, start: datetime, end: datetime) -> str | None:
    """Why `bar` must not be stored, or None when it is sound."""
    if not (start <= bar.ts < end):
        return "timestamp outside the request"
    o, h, low, c = bar.open, bar.high, bar.low, bar.close
    if o <= 0 or h <= 0 or low <= 0 or c <= 0:
        return "non-positive price"
    if h > MAX_PRICE:
        return "price out of range"
    if h < o or h < c:
        return "high below open/close"
    if low > o or low > c:
        return "low above open/close"
    if bar.volume < 0:
        return "negative volume"
    if bar.timeframe == "1m" and (bar.ts.second or bar.ts.microsecond):
        return "timestamp not on a minute boundary"
    return None


@dataclass
class PageResult:
    rows: list[tuple]
    invalid: int = 0
    examples: list[dict] = field(default_factory=list)


def validate_page(
    bars: Iterable[BarEvent],
    *,
    instrument_id: int,
    timeframe: str,
    start: datetime,
    end: datetime,
) -> PageResult:
    result = PageResult(rows=[])
    append = result.rows.append
    minutes = timeframe == Timeframe.MINUTE
    for bar in bars:
        ts, o, h, low, c = bar.ts, bar.open, bar.high, bar.low, bar.close
        # Fast path for sound bars (the same rules as `bar_problem`, inlined:
        # low > 0 with low <= open/close <= high covers every price).
        if (
            start <= ts < end
            and low > 0
            and low <= o <= h
            and low <= c <= h
            and bar.volume >= 0
            and h <= MAX_PRICE
            and (not minutes or not (ts.second or ts.microsecond))
        ):
            append(
                (
                    instrument_id,
                    timeframe,
                    ts,
                    o,
                    h,
                    low,
                    c,
                    bar.volume,
                    bar.vwap,
                    bar.trade_count,
                )
            )
            continue
        # Same rules as the fast path, so this always names the problem.
        problem = bar_problem(bar, start=start, end=end) or "invalid bar"
        result.invalid += 1
        if len(result.examples) < INVALID_EXAMPLES:
            result.examples.append(
                {
                    "ts": bar.ts.isoformat(),
                    "problem": problem,
                    "ohlcv": [
                        str(bar.open),
                        str(bar.high),
                        str(bar.low),
                        str(bar.close),
                        str(bar.volume),
                    ],
                }
            )
    return result


# --- providers --------------------------------------------------------------------
def provider_build(
    *,
    name: str,
    instruments: Iterable[Instrument],
    rate_limited: bool = True,
    **options,
) -> Provider:
    """An adapter for `name` with the instruments' symbol mapping and the
    Redis-shared rate limiter plugged into its request hook."""
    from marketdata.providers import provider_class
    from marketdata.ratelimit import rate_limiter_for

    cls = provider_class(name)
    # The simulator speaks Alpaca's protocol, so it maps symbols as Alpaca.
    mapping_name = getattr(cls, "symbol_namespace", None) or name
    symbols = {i.symbol: i.provider_symbol(mapping_name) for i in instruments}
    limiter = rate_limiter_for(name) if rate_limited else None
    return cls(symbols=symbols, rate_limiter=limiter, **options)


def _default_factory(name: str, instrument: Instrument) -> Provider:
    return provider_build(name=name, instruments=[instrument])


# --- planning -----------------------------------------------------------------------
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
            except Exception as exc:  # noqa: BLE001 - the chunks are queued in the database
                logger.warning(
                    "%d chunk(s) not sent to the workers (%s): they stay queued and "
                    "the workers' reclaimer sends them once the broker answers",
                    len(ids) - sent,
                    one_line(exc),
                )
                return

    transaction.on_commit(send)


# --- running one chunk ---------------------------------------------------------------
def _claim(chunk_id: int) -> LoadChunk | None:
    """Take the chunk if nobody holds it. Its new `attempts` is the claim's
    token: writes of a worker whose claim was taken over (after its heartbeat
    went stale) match no row and stop it."""
    now = timezone.now()
    # Failed chunks wait for a resume (`load_job_plan` queues them again).
    claimable = Q(state__in=[ChunkState.PENDING, ChunkState.QUEUED]) | Q(
        state=ChunkState.RUNNING, heartbeat_at__lt=now - _stale_after()
    )
    updated = LoadChunk.objects.filter(claimable, id=chunk_id).update(
        state=ChunkState.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=Least(F("attempts") + 1, MAX_ATTEMPTS),
        error="",
    )
    if not updated:
        return None
    return LoadChunk.objects.select_related("instrument", "job").get(id=chunk_id)


def range_covered(
    *,
    instrument: Instrument,
    timeframe: str,
    start: datetime,
    end: datetime,
    provider: str | None = None,
    exclude_chunk_id: int | None = None,
) -> bool:
    """True when [start, end) needs no fetch: an earlier chunk of `provider`
    fetched it completely (its own record), or every bar the calendar expects
    is already stored: the expected SET, with the extended session where the
    provider serves it (`marketdata.coverage`), never a count."""
    earlier = LoadChunk.objects.filter(
        instrument_id=instrument.id,
        timeframe=timeframe,
        state=ChunkState.DONE,
        start__lte=start,
        covered_until__gte=end,
    )
    if provider:
        earlier = earlier.filter(job__provider=provider)
    if exclude_chunk_id is not None:
        earlier = earlier.exclude(id=exclude_chunk_id)
    if earlier.exists():
        return True
    return stored_coverage(
        instrument=instrument,
        timeframe=timeframe,
        start=start,
        end=end,
        provider=provider,
    ).complete


def stored_coverage(
    *,
    instrument: Instrument,
    timeframe: str,
    start: datetime,
    end: datetime,
    provider: str | None = None,
) -> Coverage:
    """Expected and stored-of-expected bars in [start, end) for `provider`
    (default: the instrument's history provider)."""
    if provider is None:
        from marketdata.gaps import history_provider_name

        provider = history_provider_name(instrument=instrument)
    return range_coverage(
        instrument_id=instrument.id,
        asset_class=instrument.asset_class,
        timeframe=timeframe,
        start=start,
        end=end,
        extended=serves_extended_hours(provider),
    )


def _rollups_present(chunk: LoadChunk) -> bool:
    return BarRollup.objects.filter(
        instrument_id=chunk.instrument_id,
        timeframe="1h",
        ts__gte=chunk.start,
        ts__lt=chunk.end,
    ).exists()


def chunk_covered(*, chunk: LoadChunk) -> bool:
    return range_covered(
        instrument=chunk.instrument,
        timeframe=chunk.timeframe,
        start=chunk.start,
        end=chunk.end,
        provider=chunk.job.provider,
        exclude_chunk_id=chunk.id,
    )


class ClaimLost(Exception):
    """Another worker took the chunk over (this one's heartbeat went stale)."""


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    state: str
    bars_added: int = 0
    bars_received: int = 0
    invalid: int = 0
    error: str = ""
    #: a transient failure: the chunk is queued again, to be run after a back-off
    retry: bool = False
    retry_after: float | None = None  # what the provider asked for, seconds


def load_chunk_run(
    *,
    chunk_id: int,
    provider_factory: ProviderFactory | None = None,
    sleep: Callable[[float], None] = time.sleep,
    check_coverage: bool = True,
) -> ChunkOutcome:
    """Run one chunk to completion (idempotent: a chunk that is finished or
    held by another worker returns at once). A transient failure queues the
    chunk again and returns `retry=True`; a permanent one fails the chunk."""
    try:
        chunk = _claim(chunk_id)
        if chunk is None:
            current = (
                LoadChunk.objects.filter(id=chunk_id)
                .values_list("state", flat=True)
                .first()
            )
            return ChunkOutcome(state=current or "missing")
    except Exception as exc:
        if not is_transient(exc):
            raise
        return _retry_later(chunk_id, token=0, exc=exc, sleep=sleep)
    token = chunk.attempts
    try:
        if check_coverage and chunk_covered(chunk=chunk):
            if chunk.timeframe == Timeframe.MINUTE and not _rollups_present(chunk):
                # Stored by someone who did not refresh (e.g. a failed chunk).
                rollups_refresh(
                    instrument_id=chunk.instrument_id,
                    asset_class=chunk.instrument.asset_class,
                    start=chunk.start,
                    end=chunk.end,
                )
            _chunk_finish(chunk, token, ChunkState.SKIPPED, covered_until=chunk.end)
            return ChunkOutcome(state=ChunkState.SKIPPED)

        fetch_started = timezone.now()
        provider = (provider_factory or _default_factory)(
            chunk.job.provider, chunk.instrument
        )
        _fetch_into(chunk, provider, token)
        chunk.refresh_from_db(fields=["bars_added", "bars_received", "invalid_bars"])
        if chunk.timeframe == Timeframe.MINUTE and chunk.bars_added:
            rollups_refresh(
                instrument_id=chunk.instrument_id,
                asset_class=chunk.instrument.asset_class,
                start=chunk.start,
                end=chunk.end,
            )
        _chunk_finish(
            chunk,
            token,
            ChunkState.DONE,
            covered_until=min(chunk.end, fetch_started - SETTLE),
        )
    except ClaimLost:
        logger.warning("chunk %s: taken over by another worker, stopping", chunk.id)
        return ChunkOutcome(state=ChunkState.RUNNING)
    except KeyboardInterrupt:
        # Ctrl-C in `--sync`: the next run of the command picks it up again.
        LoadChunk.objects.filter(id=chunk.id).update(
            state=ChunkState.PENDING, error="interrupted", heartbeat_at=None
        )
        raise
    except Exception as exc:  # noqa: BLE001 — retried or recorded, never lost
        if is_transient(exc):
            return _retry_later(chunk.id, token=token, exc=exc, sleep=sleep)
        if isinstance(exc, ProviderError):
            logger.warning("chunk %s failed: %s", chunk.id, exc)
            return _chunk_failed(chunk, token, str(exc))
        logger.exception("chunk %s failed", chunk.id)
        return _chunk_failed(chunk, token, f"{type(exc).__name__}: {exc}")
    except BaseException as exc:  # a worker time limit or shutdown: run it later
        _release(chunk.id, token, f"interrupted: {type(exc).__name__}", patience=0)
        raise
    return ChunkOutcome(
        state=ChunkState.DONE,
        bars_added=chunk.bars_added,
        bars_received=chunk.bars_received,
        invalid=chunk.invalid_bars,
    )


def _fetch_into(chunk: LoadChunk, provider: Provider, token: int) -> None:
    origin = BarOrigin.FILE if chunk.job.provider == "csv" else BarOrigin.HISTORY
    pages = provider.fetch_bars(
        symbol=chunk.instrument.symbol,
        start=chunk.start,
        end=chunk.end,
        timeframe=chunk.timeframe,
    )
    for page in pages:
        page_result = validate_page(
            page,
            instrument_id=chunk.instrument_id,
            timeframe=chunk.timeframe,
            start=chunk.start,
            end=chunk.end,
        )
        written = 0
        if page_result.rows:
            written = bars_upsert(
                rows=page_result.rows, provider=chunk.job.provider, origin=origin
            ).written
        _chunk_progress(chunk, token, page, written, page_result)


def _mine(chunk_id: int, token: int):
    return LoadChunk.objects.filter(
        id=chunk_id, state=ChunkState.RUNNING, attempts=token
    )


def _chunk_progress(
    chunk: LoadChunk, token: int, page: list, written: int, result: PageResult
) -> None:
    updates = {
        "bars_received": F("bars_received") + len(page),
        "bars_added": F("bars_added") + written,
        "invalid_bars": F("invalid_bars") + result.invalid,
        "pages": F("pages") + 1,
        "heartbeat_at": timezone.now(),
    }
    if result.examples:
        examples = (chunk.invalid_examples + result.examples)[:INVALID_EXAMPLES]
        chunk.invalid_examples = examples
        updates["invalid_examples"] = examples
    if not _mine(chunk.id, token).update(**updates):
        raise ClaimLost(chunk.id)


def _chunk_finish(
    chunk: LoadChunk, token: int, state: str, *, covered_until: datetime
) -> None:
    finished = _mine(chunk.id, token).update(
        state=state, finished_at=timezone.now(), covered_until=covered_until
    )
    if not finished:
        raise ClaimLost(chunk.id)
    _job_refresh_quietly(chunk.job_id)


def _chunk_failed(chunk: LoadChunk, token: int, message: str) -> ChunkOutcome:
    _mine(chunk.id, token).update(
        state=ChunkState.FAILED, error=message[:2000], finished_at=timezone.now()
    )
    _job_refresh_quietly(chunk.job_id)
    return ChunkOutcome(state=ChunkState.FAILED, error=message)


def _retry_later(
    chunk_id: int, *, token: int, exc: BaseException, sleep: Callable[[float], None]
) -> ChunkOutcome:
    """A transient failure: queue the chunk again (token 0: it was never
    claimed) and ask for a retry after a back-off."""
    reason = one_line(exc)
    warn_limited(logger, "chunk %s: %s; retried after a back-off", chunk_id, reason)
    released = token == 0 or _release(
        chunk_id, token, f"retrying: {reason}", sleep=sleep
    )
    return ChunkOutcome(
        state=ChunkState.QUEUED if released else ChunkState.RUNNING,
        error=reason,
        retry=True,
        retry_after=retry_after_of(exc),
    )


def _release(
    chunk_id: int,
    token: int,
    reason: str,
    *,
    patience: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Put a chunk this worker holds back in the queue. The usual reason is
    the database going away, so the write is tried again for up to `patience`
    seconds (default half of HISTORY_STALE_SECONDS: the chunk is back in the
    queue moments after the database, instead of waiting for its heartbeat to
    go stale). False when it could not be written: the reclaimer then hands
    the chunk out once its heartbeat is stale."""
    if patience is None:
        patience = _stale_after().total_seconds() / 2
    deadline = time.monotonic() + patience
    delay = 1.0
    while True:
        try:
            if not connection.in_atomic_block:  # never inside a caller's transaction
                close_old_connections()  # drops a connection the outage broke
            _mine(chunk_id, token).update(
                state=ChunkState.QUEUED,
                heartbeat_at=timezone.now(),
                error=reason[:2000],
            )
            return True
        except Exception as exc:  # noqa: BLE001 - retried below or left to the reclaimer
            if not is_database_error(exc) or time.monotonic() + delay > deadline:
                logger.warning(
                    "chunk %s not queued again (%s): the reclaimer hands it out "
                    "once its heartbeat is stale",
                    chunk_id,
                    one_line(exc),
                )
                return False
        sleep(delay)
        delay = min(delay * 2, 10.0)


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
    except Exception as exc:  # noqa: BLE001 - the reclaimer closes finished jobs
        if not is_transient(exc):
            raise
        logger.info("job %s not closed yet (%s)", job_id, one_line(exc))


def load_job_run_sync(
    *,
    job: LoadJob,
    chunk_ids: Iterable[int],
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
    provider_factory: ProviderFactory | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """`--sync`: run chunks one after another in this process; a chunk that
    failed transiently runs again after a back-off until it finishes."""
    for chunk_id in chunk_ids:
        tries = 0
        while True:
            outcome = load_chunk_run(
                chunk_id=chunk_id, provider_factory=provider_factory, sleep=sleep
            )
            if not connection.in_atomic_block:  # never inside a caller's transaction
                close_old_connections()
            if on_chunk is not None:
                on_chunk(outcome)
            if not outcome.retry:
                break
            tries += 1
            sleep(retry_delay(tries=tries, retry_after=outcome.retry_after))
    _job_refresh_quietly(job.id)


# --- progress -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobProgress:
    job_id: int
    state: str
    chunks: int
    finished: int
    done: int
    skipped: int
    failed: int
    running: int
    bars_added: int
    bars_received: int
    invalid_bars: int

    @property
    def complete(self) -> bool:
        return self.finished >= self.chunks


def load_job_progress(*, job_id: int) -> JobProgress:
    job = LoadJob.objects.get(id=job_id)
    totals = LoadChunk.objects.filter(job_id=job_id).aggregate(
        chunks=Count("id"),
        done=Count("id", filter=Q(state=ChunkState.DONE)),
        skipped=Count("id", filter=Q(state=ChunkState.SKIPPED)),
        failed=Count("id", filter=Q(state=ChunkState.FAILED)),
        running=Count("id", filter=Q(state=ChunkState.RUNNING)),
        bars_added=Sum("bars_added"),
        bars_received=Sum("bars_received"),
        invalid_bars=Sum("invalid_bars"),
    )
    finished = totals["done"] + totals["skipped"] + totals["failed"]
    return JobProgress(
        job_id=job_id,
        state=job.state,
        chunks=totals["chunks"],
        finished=finished,
        done=totals["done"],
        skipped=totals["skipped"],
        failed=totals["failed"],
        running=totals["running"],
        bars_added=totals["bars_added"] or 0,
        bars_received=totals["bars_received"] or 0,
        invalid_bars=totals["invalid_bars"] or 0,
    )


def load_job_summary(*, job_id: int) -> list[dict]:
    """Per instrument: bars added, invalid, chunk states, years covered, time."""
    rows = (
        LoadChunk.objects.filter(job_id=job_id)
        .values("instrument__symbol")
        .annotate(
            bars_added=Sum("bars_added"),
            bars_received=Sum("bars_received"),
            invalid_bars=Sum("invalid_bars"),
            chunks=Count("id"),
            failed=Count("id", filter=Q(state=ChunkState.FAILED)),
            skipped=Count("id", filter=Q(state=ChunkState.SKIPPED)),
            first=Min("start"),
            last=Max("end"),
            started=Min("started_at"),
            finished=Max("finished_at"),
        )
        .order_by("instrument__symbol")
    )
    summary = []
    for row in rows:
        seconds = (
            (row["finished"] - row["started"]).total_seconds()
            if row["started"] and row["finished"]
            else 0.0
        )
        years = (row["last"] - row["first"]).days / 365.25 if row["first"] else 0.0
        summary.append(
            {
                "symbol": row["instrument__symbol"],
                "bars_added": row["bars_added"] or 0,
                "bars_received": row["bars_received"] or 0,
                "invalid_bars": row["invalid_bars"] or 0,
                "chunks": row["chunks"],
                "failed": row["failed"],
                "skipped": row["skipped"],
                "years": round(years, 2),
                "seconds": round(seconds, 1),
            }
        )
    return summary


def load_job_failures(*, job_id: int, limit: int = 10) -> list[LoadChunk]:
    return list(
        LoadChunk.objects.filter(job_id=job_id, state=ChunkState.FAILED)
        .select_related("instrument")
        .order_by("instrument__symbol", "start")[:limit]
    )


def load_job_invalid_examples(
    *, job_id: int, limit: int = 10
) -> list[tuple[str, dict]]:
    examples = []
    for chunk in (
        LoadChunk.objects.filter(job_id=job_id, invalid_bars__gt=0)
        .select_related("instrument")
        .order_by("instrument__symbol", "start")
    ):
        for example in chunk.invalid_examples:
            examples.append((chunk.instrument.symbol, example))
            if len(examples) >= limit:
                return examples
    return examples


# --- coverage (`--check-only`) ------------------------------------------------------------
def coverage_check(
    *,
    instruments: Iterable[Instrument],
    timeframe: str,
    start: datetime,
    end: datetime,
    provider: str | None = None,
) -> list[dict]:
    """What a load would do, fetching nothing: per instrument, stored bars,
    expected bars (with the extended session where `provider`, by default
    the instrument's history provider, serves it), how many of those are
    stored and how many chunks are already covered."""
    report = []
    for instrument in instruments:
        stored = Bar.objects.filter(
            instrument=instrument, timeframe=timeframe, ts__gte=start, ts__lt=end
        ).aggregate(n=Count("ts"), first=Min("ts"), last=Max("ts"))
        cover = stored_coverage(
            instrument=instrument,
            timeframe=timeframe,
            start=start,
            end=end,
            provider=provider,
        )
        ranges = chunk_ranges(timeframe=timeframe, start=start, end=end)
        covered = sum(
            1
            for lo, hi in ranges
            if range_covered(
                instrument=instrument,
                timeframe=timeframe,
                start=lo,
                end=hi,
                provider=provider,
            )
        )
        report.append(
            {
                "symbol": instrument.symbol,
                "stored": stored["n"],
                "expected": cover.expected,
                "coverage": (
                    cover.present / cover.expected * 100.0 if cover.expected else 0.0
                ),
                "first": stored["first"],
                "last": stored["last"],
                "chunks": len(ranges),
                "chunks_covered": covered,
            }
        )
    return report


def parse_day(value: str) -> date:
    return date.fromisoformat(value)
