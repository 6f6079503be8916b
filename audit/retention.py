"""AUDIT_RETENTION_DAYS: audit events older than the limit are deleted, the
one delete the append-only trigger lets through (this transaction sets
`tapeline.audit_retention`).

In batches of BATCH rows (each its own short transaction, oldest first by
primary key) and at most PASS_LIMIT per call; a backlog is worked off by
later calls. Runs from the reclaimer (`audit_retention_reclaim` in settings'
RECLAIM_SERVICES, at most every RETENTION_EVERY seconds while nothing is
left) and `manage.py audit_retention`; the setting is read at every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

BATCH = 5_000
PASS_LIMIT = 100_000
RETENTION_EVERY = 3600.0
RETENTION_LOCK = 0x61756474  # advisory lock key ("audt")
_last_complete: list[float] = []


@dataclass(frozen=True, slots=True)
class AuditRetentionReport:
    cutoff: datetime
    deleted: int
    complete: bool  # nothing older than the cutoff is left

    def __str__(self) -> str:
        more = "" if self.complete else " (more left for the next run)"
        return (
            f"audit retention: {self.deleted} event(s) before "
            f"{self.cutoff:%Y-%m-%d %H:%M} UTC deleted{more}"
        )

    def __bool__(self) -> bool:
        return self.deleted > 0


def audit_retention_cutoff(*, now: datetime) -> datetime | None:
    days = settings.AUDIT_RETENTION_DAYS
    return now - timedelta(days=days) if days else None


def audit_retention_apply(
    *, now: datetime, batch: int = BATCH, limit: int = PASS_LIMIT
) -> AuditRetentionReport | None:
    """Delete up to `limit` events older than AUDIT_RETENTION_DAYS before
    `now`. None when retention is off or another process is running it."""
    cutoff = audit_retention_cutoff(now=now)
    if cutoff is None:
        return None
    deleted, complete = 0, False
    while deleted < limit:
        size = min(batch, limit - deleted)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RETENTION_LOCK])
            if not cursor.fetchone()[0]:
                return None
            cursor.execute("SET LOCAL tapeline.audit_retention = 'on'")
            cursor.execute(
                "DELETE FROM audit_auditevent WHERE id IN (SELECT id FROM "
                "audit_auditevent WHERE at < %s ORDER BY id LIMIT %s)",
                [cutoff, size],
            )
            done = cursor.rowcount
            # SET LOCAL outlives a released savepoint: called inside an outer
            # transaction, the trigger must refuse deletes again after this.
            cursor.execute("SET LOCAL tapeline.audit_retention = 'off'")
        deleted += done
        if done < size:
            complete = True
            break
    return AuditRetentionReport(cutoff=cutoff, deleted=deleted, complete=complete)


def audit_retention_reclaim() -> AuditRetentionReport | None:
    """Reclaim service (settings' RECLAIM_SERVICES): one retention pass,
    skipped for RETENTION_EVERY seconds after a pass that left nothing."""
    from django.utils import timezone

    if not settings.AUDIT_RETENTION_DAYS:
        return None
    if _last_complete and time.monotonic() - _last_complete[0] < RETENTION_EVERY:
        return None
    report = audit_retention_apply(now=timezone.now())
    if report is None or report.complete:
        _last_complete[:] = [time.monotonic()]
    else:
        _last_complete.clear()
    return report
