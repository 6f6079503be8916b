"""AUDIT_RETENTION_DAYS: audit events older than the limit are deleted, the
one delete the append-only trigger lets through (this transaction sets
`tapeline.audit_retention`).

In batches of BATCH rows (each its own short transaction, oldest first by
primary key) and at most PASS_LIMIT per call; a backlog is worked off by
later calls (`core.retention`). Runs from the reclaimer
(`audit_retention_reclaim` in settings' RECLAIM_SERVICES, hourly while nothing
is left) and `manage.py audit_retention`; the setting is read at every run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from core.retention import Pacing, RetentionReport, delete_in_batches

BATCH = 5_000
PASS_LIMIT = 100_000
RETENTION_LOCK = 0x61756474  # advisory lock key ("audt")
pacing = Pacing(every=3600.0)


def audit_retention_cutoff(*, now: datetime) -> datetime | None:
    days = settings.AUDIT_RETENTION_DAYS
    return now - timedelta(days=days) if days else None


def audit_retention_apply(
    *, now: datetime, batch: int = BATCH, limit: int = PASS_LIMIT
) -> RetentionReport | None:
    """Delete up to `limit` events older than AUDIT_RETENTION_DAYS before
    `now`. None when retention is off or another process is running it."""
    cutoff = audit_retention_cutoff(now=now)
    if cutoff is None:
        return None
    result = delete_in_batches(
        sql="DELETE FROM audit_auditevent WHERE id IN (SELECT id FROM "
        "audit_auditevent WHERE at < %s ORDER BY id LIMIT %s)",
        cutoff=cutoff,
        lock=RETENTION_LOCK,
        batch=batch,
        limit=limit,
        before=["SET LOCAL tapeline.audit_retention = 'on'"],
        # SET LOCAL outlives a released savepoint: called inside an outer
        # transaction, the trigger must refuse deletes again after this.
        after=["SET LOCAL tapeline.audit_retention = 'off'"],
    )
    if result is None:
        return None
    deleted, complete = result
    return RetentionReport(
        label="audit retention",
        noun="event(s)",
        cutoff=cutoff,
        deleted=deleted,
        complete=complete,
    )


def audit_retention_reclaim() -> RetentionReport | None:
    """Reclaim service (settings' RECLAIM_SERVICES): one retention pass,
    then none for an hour once a pass left nothing."""
    from django.utils import timezone

    if not settings.AUDIT_RETENTION_DAYS or not pacing.due():
        return None
    report = audit_retention_apply(now=timezone.now())
    pacing.ran(report)
    return report
