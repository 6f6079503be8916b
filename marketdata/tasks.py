"""Dramatiq actors for history loading and gap repair (run by `rundramatiq`).

Actors take ids, load rows and call one service; every service here claims
its row atomically, so a redelivered or duplicate message is harmless.
Transient failures come back as `dramatiq.Retry`: retried without limit,
with exponential back-off (2 s doubling, at most `transient.max_backoff()`),
never dropped. `marketdata.reclaim` explains the whole design.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import TimeLimitExceeded

from core.logs import cause
from marketdata import gaps, history
from marketdata.transient import MIN_BACKOFF, is_transient, max_backoff

HOUR_MS = 60 * 60 * 1000


def _retry_when(retries: int, exception: BaseException) -> bool:
    """Retry transient failures (and time limits: the chunk was queued
    again) forever; anything else was recorded on its row already."""
    return isinstance(exception, dramatiq.Retry | TimeLimitExceeded)


BACKOFF = {
    "retry_when": _retry_when,
    "min_backoff": int(MIN_BACKOFF * 1000),
    "max_backoff": int(max_backoff() * 1000),
}


def _retry(delay: float | None, reason: str) -> dramatiq.Retry:
    # No delay: the Retries middleware backs off by the message's retry count.
    return dramatiq.Retry(reason, delay=int(delay * 1000) if delay else None)


@dramatiq.actor(queue_name="history", time_limit=HOUR_MS, **BACKOFF)
def load_chunk(chunk_id: int) -> None:
    """Load one chunk; a transient failure queues it again and retries."""
    try:
        outcome = history.load_chunk_run(chunk_id=chunk_id)
    except Exception as exc:
        if is_transient(exc):
            raise _retry(None, cause(exc)) from exc
        raise
    if outcome.retry:
        raise _retry(outcome.retry_after, outcome.error)


@dramatiq.actor(queue_name="backfill", time_limit=15 * 60 * 1000, **BACKOFF)
def gap_backfill(gap_id: int) -> None:
    """Repair one gap; transient provider or storage failures retry with
    back-off, a range that is not over yet waits until it is."""
    try:
        gaps.gap_repair(gap_id=gap_id)
    except gaps.GapRepairRetry as exc:
        raise _retry(exc.delay, str(exc)) from exc
    except Exception as exc:
        if is_transient(exc):
            raise _retry(None, cause(exc)) from exc
        raise
