"""Running one chunk: claim it, skip it when covered, page through the
provider into storage with a heartbeat per page, and finish, fail or queue it
again; `--sync` runs a job's chunks this way in one process."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Least
from django.utils import timezone

from core.logs import RateLimitedLog, cause
from marketdata.history.covered import chunk_covered
from marketdata.history.plan import _job_refresh_quietly, _stale_after
from marketdata.history.validation import INVALID_EXAMPLES, PageResult, validate_page
from marketdata.models import (
    BarOrigin,
    BarRollup,
    ChunkState,
    Instrument,
    LoadChunk,
    LoadJob,
    Timeframe,
)
from marketdata.providers.base import Provider, ProviderError
from marketdata.providers.routing import provider_build
from marketdata.rollups import rollups_refresh
from marketdata.services import bars_upsert
from marketdata.transient import (
    is_database_error,
    is_transient,
    retry_after_of,
    retry_delay,
)

logger = logging.getLogger(__name__)
# An outage makes every chunk in flight retry: one line a minute says so.
retries = RateLimitedLog(logger)

# Data this close to "now" may still change at the provider: not "covered".
SETTLE = timedelta(minutes=15)
MAX_ATTEMPTS = 32767  # LoadChunk.attempts is a smallint

ProviderFactory = Callable[[str, Instrument], Provider]


# --- providers --------------------------------------------------------------------
def _default_factory(name: str, instrument: Instrument) -> Provider:
    return provider_build(name=name, instruments=[instrument])


# --- running one chunk ---------------------------------------------------------------
def load_chunk_claim(*, chunk_id: int) -> LoadChunk | None:
    """Take the chunk if nobody holds it (None when a worker does, or it is
    finished); what every run of a chunk starts with. Its new `attempts` is the claim's
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


def _rollups_present(chunk: LoadChunk) -> bool:
    return BarRollup.objects.filter(
        instrument_id=chunk.instrument_id,
        timeframe="1h",
        ts__gte=chunk.start,
        ts__lt=chunk.end,
    ).exists()


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
        chunk = load_chunk_claim(chunk_id=chunk_id)
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
    except Exception as exc:  # retried or recorded, never lost
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
        # The bars and the chunk's count of them commit together: a worker
        # killed between the two left bars its resumed chunk then did not
        # count as added (the load's report came out short).
        with transaction.atomic():
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
    reason = cause(exc)
    retries.warning("retry", "chunk %s retried after a back-off", chunk_id, exc=exc)
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
        except Exception as exc:  # retried below or left to the reclaimer
            if not is_database_error(exc) or time.monotonic() + delay > deadline:
                logger.warning(
                    "chunk %s not queued again (%s): the reclaimer hands it out "
                    "once its heartbeat is stale",
                    chunk_id,
                    cause(exc),
                )
                return False
        sleep(delay)
        delay = min(delay * 2, 10.0)


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
