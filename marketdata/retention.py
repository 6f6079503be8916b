"""BAR_RETENTION_DAYS: 1-minute bars older than the limit are deleted, on
plain PostgreSQL and on TimescaleDB alike; hourly and daily bars, the rollup
table and the Timescale continuous aggregate keep everything.

Deletes go in batches of BATCH rows (each its own short transaction, keyed by
primary key so no batch holds locks long) and at most PASS_LIMIT rows per
call; a backlog is worked off by later calls. On TimescaleDB, deleting from
compressed chunks works (the engine decompresses the batches it touches).

Runs: `bars_retention_reclaim` is one of settings' RECLAIM_SERVICES (the
reclaimer thread of every Dramatiq worker, at most every RETENTION_EVERY
seconds while nothing is left to delete), and `manage.py bars_retention`.
The setting is read at every run, so a change applies at the next one.

The continuous aggregate must never be refreshed over minutes retention
deleted (a refresh recomputes its hours from what is left: nothing). Its
refresh policy's window therefore ends an hour inside the retention limit
(`cagg_policy_fit`), and `rollups_refresh` never recomputes buckets older
than the limit that its own write did not cover whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

BATCH = 10_000
PASS_LIMIT = 200_000
RETENTION_EVERY = 300.0  # seconds between reclaimer runs once nothing is left
RETENTION_LOCK = 0x72657465  # advisory lock key ("rete")
CAGG_START_OFFSET = timedelta(days=3)
CAGG_END_OFFSET = timedelta(hours=1)
_last_complete: list[float] = []


@dataclass(frozen=True, slots=True)
class RetentionReport:
    cutoff: datetime
    deleted: int
    complete: bool  # nothing older than the cutoff is left

    def __str__(self) -> str:
        more = "" if self.complete else " (more left for the next run)"
        return (
            f"retention: {self.deleted} 1-minute bar(s) before "
            f"{self.cutoff:%Y-%m-%d %H:%M} UTC deleted{more}"
        )

    def __bool__(self) -> bool:
        return self.deleted > 0


def retention_cutoff(*, now: datetime) -> datetime | None:
    """Minutes before this are deleted; None keeps every minute."""
    days = settings.BAR_RETENTION_DAYS
    return now - timedelta(days=days) if days else None


def bars_retention_apply(
    *, now: datetime, batch: int = BATCH, limit: int = PASS_LIMIT
) -> RetentionReport | None:
    """Delete up to `limit` 1-minute bars older than BAR_RETENTION_DAYS before
    `now`. None when retention is off or another process is running it."""
    from marketdata.rollups import TIMESCALE_HOURLY_VIEW, timescale_in_use

    with connection.cursor() as cursor:
        if timescale_in_use(cursor):
            cagg_policy_fit(cursor, view=TIMESCALE_HOURLY_VIEW)
    cutoff = retention_cutoff(now=now)
    if cutoff is None:
        return None
    deleted, complete = 0, False
    while deleted < limit:
        size = min(batch, limit - deleted)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RETENTION_LOCK])
            if not cursor.fetchone()[0]:
                return None
            cursor.execute(
                "DELETE FROM marketdata_bar b USING (SELECT instrument_id, ts "
                "FROM marketdata_bar WHERE timeframe = '1m' AND ts < %s LIMIT %s) old "
                "WHERE b.instrument_id = old.instrument_id AND b.timeframe = '1m' "
                "AND b.ts = old.ts",
                [cutoff, size],
            )
            done = cursor.rowcount
        deleted += done
        if done < size:
            complete = True
            break
    return RetentionReport(cutoff=cutoff, deleted=deleted, complete=complete)


def cagg_policy_fit(cursor, *, view: str) -> bool:
    """Keep the continuous aggregate's refresh window inside the retention
    limit (3 days back, or the limit less an hour); returns whether the
    policy was changed."""
    days = settings.BAR_RETENTION_DAYS
    start = CAGG_START_OFFSET
    if days:
        start = min(start, timedelta(days=days) - CAGG_END_OFFSET)
    cursor.execute(
        "SELECT (config->>'start_offset')::interval FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_refresh_continuous_aggregate' "
        "AND hypertable_name = %s",
        [view],
    )
    row = cursor.fetchone()
    if row is not None and row[0] == start:
        return False
    cursor.execute(
        "SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", [view]
    )
    cursor.execute(
        "SELECT add_continuous_aggregate_policy(%s, start_offset => %s, "
        "end_offset => %s, schedule_interval => interval '5 minutes')",
        [view, start, CAGG_END_OFFSET],
    )
    return True


def bars_retention_reclaim() -> RetentionReport | None:
    """Reclaim service (settings' RECLAIM_SERVICES): one retention pass,
    skipped for RETENTION_EVERY seconds after a pass that left nothing."""
    from django.utils import timezone

    if not settings.BAR_RETENTION_DAYS:
        return None
    if _last_complete and time.monotonic() - _last_complete[0] < RETENTION_EVERY:
        return None
    report = bars_retention_apply(now=timezone.now())
    if report is None or report.complete:
        _last_complete[:] = [time.monotonic()]
    else:
        _last_complete.clear()
    return report
