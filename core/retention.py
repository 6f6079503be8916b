"""Deleting what is older than a retention limit, shared by the bar table's
(`marketdata.retention`) and the audit log's (`audit.retention`).

Rows go in batches, each its own short transaction under a transaction-level
advisory lock (a second process finds it taken and does nothing), at most
`limit` rows per call: a backlog is worked off by later calls. A reclaimer
service calls again at once while rows are left, and waits `every` seconds
after a pass that left nothing (`Pacing`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction


@dataclass(frozen=True, slots=True)
class RetentionReport:
    label: str  # e.g. "retention: 12 1-minute bar(s)"'s "retention"
    noun: str  # what was deleted, e.g. "1-minute bar(s)"
    cutoff: datetime
    deleted: int
    complete: bool  # nothing older than the cutoff is left

    def __str__(self) -> str:
        more = "" if self.complete else " (more left for the next run)"
        return (
            f"{self.label}: {self.deleted} {self.noun} before "
            f"{self.cutoff:%Y-%m-%d %H:%M} UTC deleted{more}"
        )

    def __bool__(self) -> bool:
        return self.deleted > 0


def delete_in_batches(
    *,
    sql: str,
    cutoff: datetime,
    lock: int,
    batch: int,
    limit: int,
    before: Sequence[str] = (),
    after: Sequence[str] = (),
) -> tuple[int, bool] | None:
    """Run `sql` (a DELETE taking the cutoff and a batch size, in that order)
    until it deletes less than a batch or `limit` rows went; `before`/`after`
    statements run inside each batch's transaction. Returns (deleted,
    complete), or None when another process holds `lock`."""
    deleted = 0
    while deleted < limit:
        size = min(batch, limit - deleted)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock])
            if not cursor.fetchone()[0]:
                return None
            for statement in before:
                cursor.execute(statement)
            cursor.execute(sql, [cutoff, size])
            done = cursor.rowcount
            for statement in after:
                cursor.execute(statement)
        deleted += done
        if done < size:
            return deleted, True
    return deleted, False


class Pacing:
    """When a reclaimer service's next pass is due: at once while rows are
    left, `every` seconds after a pass that left nothing (or found the lock
    taken)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.idle_since: float | None = None

    def due(self) -> bool:
        return (
            self.idle_since is None or time.monotonic() - self.idle_since >= self.every
        )

    def ran(self, report: RetentionReport | None) -> None:
        finished = report is None or report.complete
        self.idle_since = time.monotonic() if finished else None

    def reset(self) -> None:
        self.idle_since = None
