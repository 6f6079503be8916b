"""Dramatiq actors for history loading and gap repair (run by `rundramatiq`).

Actors take ids, load rows and call one service; every service here is
idempotent, so a redelivered message is harmless.
"""

from __future__ import annotations

import dramatiq

from marketdata import gaps, history

HOUR_MS = 60 * 60 * 1000


@dramatiq.actor(queue_name="history", max_retries=0, time_limit=HOUR_MS)
def load_chunk(chunk_id: int) -> None:
    """Load one chunk; failures are recorded on the chunk (a re-run retries)."""
    history.load_chunk_run(chunk_id=chunk_id)


@dramatiq.actor(
    queue_name="backfill",
    max_retries=8,
    min_backoff=5_000,
    max_backoff=600_000,
    time_limit=15 * 60 * 1000,
)
def gap_backfill(gap_id: int) -> None:
    """Repair one gap; transient provider failures retry with back-off."""
    gaps.gap_repair(gap_id=gap_id)
