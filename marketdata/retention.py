"""BAR_RETENTION_DAYS: 1-minute bars older than the limit are deleted, on
plain PostgreSQL and on TimescaleDB alike; hourly and daily bars, the rollup
table and the Timescale continuous aggregate keep everything.

Deletes go in batches of BATCH rows (each its own short transaction, keyed by
primary key so no batch holds locks long) and at most PASS_LIMIT rows per
call; a backlog is worked off by later calls. On TimescaleDB, deleting from
compressed chunks works (the engine decompresses the batches it touches).

Runs: `bars_retention_reclaim` is one of settings' RECLAIM_SERVICES (the
reclaimer thread of every Dramatiq worker, every five minutes
while nothing is left to delete), and `manage.py bars_retention`.
The setting is read at every run, so a change applies at the next one.

The continuous aggregate must never be refreshed over minutes retention
deleted (a refresh recomputes its hours from what is left: nothing). Its
refresh policy's window therefore ends an hour inside the retention limit
(`cagg_policy_fit`), and `rollups_refresh` never recomputes buckets older
than the limit that its own write did not cover whole.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from core.retention import Pacing, RetentionReport, delete_in_batches

BATCH = 10_000
PASS_LIMIT = 200_000
RETENTION_LOCK = 0x72657465  # advisory lock key ("rete")
CAGG_START_OFFSET = timedelta(days=3)
CAGG_END_OFFSET = timedelta(hours=1)
pacing = Pacing(every=300.0)  # between reclaimer passes once nothing is left


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
    result = delete_in_batches(
        sql="DELETE FROM marketdata_bar b USING (SELECT instrument_id, ts "
        "FROM marketdata_bar WHERE timeframe = '1m' AND ts < %s LIMIT %s) old "
        "WHERE b.instrument_id = old.instrument_id AND b.timeframe = '1m' "
        "AND b.ts = old.ts",
        cutoff=cutoff,
        lock=RETENTION_LOCK,
        batch=batch,
        limit=limit,
    )
    if result is None:
        return None
    deleted, complete = result
    return RetentionReport(
        label="retention",
        noun="1-minute bar(s)",
        cutoff=cutoff,
        deleted=deleted,
        complete=complete,
    )


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
    then none for five minutes once a pass left nothing."""
    from django.utils import timezone

    if not settings.BAR_RETENTION_DAYS or not pacing.due():
        return None
    report = bars_retention_apply(now=timezone.now())
    pacing.ran(report)
    return report
