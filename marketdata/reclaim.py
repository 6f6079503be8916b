"""History chunks and gap repairs finish by themselves: retries and the reclaimer.

The database row is the truth; a Dramatiq message only wakes a worker up.
A message does work only if it can claim its row with one atomic UPDATE (a
chunk that is pending or queued, or running with a stale heartbeat; a gap
that is open, or repairing with a stale `updated_at`), so duplicate messages
are harmless: the second finds the row taken or finished and does nothing.

Transient failures (`marketdata.transient`: database or Redis unreachable,
provider 5xx/429, network) are retried, never recorded as failures:

1. The chunk goes back to `queued` (error "retrying: …", heartbeat now);
   the gap back to `open`. If the database is what failed, the chunk's
   release is tried again for up to HISTORY_STALE_SECONDS / 2, so it is
   queued moments after the database returns.
2. The actor raises `dramatiq.Retry`: the Retries middleware re-delivers the
   same message after an exponential back-off (2 s doubling, capped at
   min(60 s, HISTORY_STALE_SECONDS / 2), at least the provider's
   Retry-After), without limit (`retry_when`). Every try touches the row,
   so a chunk or gap being retried never looks abandoned.
3. Permanent failures (unknown symbol, refused credentials, a bug) fail the
   chunk with the error (the job then ends `failed`; `load_history` again
   or admin's Resume retries it); a gap becomes `unrepairable`.

Whatever a retry cannot cover, the reclaimer does: `work_reclaim` is a
reclaim service (settings' RECLAIM_SERVICES) that `core.reclaim` runs every
HISTORY_RECLAIM_EVERY seconds (default 30; 0 turns it off) in a daemon
thread of every Dramatiq worker process. One pass, serialized across
processes by a PostgreSQL advisory lock:

- running chunks whose heartbeat is older than HISTORY_STALE_SECONDS (the
  worker was killed, or could not write its release) are queued and sent;
- queued chunks nobody touched for two reclaim periods, when the broker
  holds no message of the history queue at all (waiting, delayed or in
  flight: Redis restarted empty, a send or a retry failed while it was
  away), are sent again; while messages wait, they are presumed to be
  theirs, so a long queue is never duplicated;
- the same for gaps: `repairing` ones not touched for HISTORY_STALE_SECONDS
  and `open` ones (reported while Redis was down, or whose retries were
  lost) when the backfill queue is empty;
- jobs whose chunks have all finished are closed (done only when every
  chunk is done or skipped).

Jobs run by `load_history --sync` or a CSV import belong to that command and
are left alone. A pass that fails (the database or Redis away) raises: the
thread logs one line when passes start failing and one when they work again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import dramatiq
from django.conf import settings

logger = logging.getLogger(__name__)

RECLAIM_LOCK = 0x7265636C  # advisory lock key ("recl")
BATCH = 5000  # rows re-sent per kind and pass at most


@dataclass
class ReclaimReport:
    stale_chunks: list[int] = field(default_factory=list)
    lost_chunks: list[int] = field(default_factory=list)
    stale_gaps: list[int] = field(default_factory=list)
    lost_gaps: list[int] = field(default_factory=list)
    jobs_closed: int = 0
    not_sent: int = 0

    def __str__(self) -> str:
        return (
            f"{len(self.stale_chunks)} chunk(s) of dead workers and "
            f"{len(self.lost_chunks)} with lost messages re-sent, "
            f"{len(self.stale_gaps) + len(self.lost_gaps)} gap repair(s) re-sent, "
            f"{self.jobs_closed} job(s) closed"
        )

    def __bool__(self) -> bool:
        return bool(
            self.stale_chunks
            or self.lost_chunks
            or self.stale_gaps
            or self.lost_gaps
            or self.jobs_closed
        )


def messages_waiting(broker: dramatiq.Broker, queue_name: str) -> int | None:
    """Messages of `queue_name` the broker holds (waiting, delayed or being
    processed), or None when this broker cannot tell."""
    client = getattr(broker, "client", None)
    namespace = getattr(broker, "namespace", None)
    if client is None or namespace is None:
        return None
    key = f"{namespace}:{queue_name}"
    return int(client.hlen(f"{key}.msgs")) + int(client.hlen(f"{key}.DQ.msgs"))


def work_reclaim(*, broker: dramatiq.Broker | None = None) -> ReclaimReport | None:
    """One reclaimer pass (see the module docstring). None when another
    process is running one."""
    from django.db import connection, transaction
    from django.db.models import Q
    from django.utils import timezone

    from marketdata.history import load_jobs_close_finished
    from marketdata.models import ChunkState, Gap, GapState, JobState, LoadChunk

    broker = broker or dramatiq.get_broker()
    now = timezone.now()
    stale = now - timedelta(seconds=settings.HISTORY_STALE_SECONDS)
    quiet = now - timedelta(seconds=2 * settings.HISTORY_RECLAIM_EVERY)
    # Untouched for a while with no message left: lost. A broker that cannot
    # say: untouched for as long as a dead worker's heartbeat.
    lost_chunks_before = _lost_before(messages_waiting(broker, "history"), quiet, stale)
    lost_gaps_before = _lost_before(messages_waiting(broker, "backfill"), quiet, stale)
    report = ReclaimReport()
    unfinished = [JobState.PENDING, JobState.RUNNING]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RECLAIM_LOCK])
            if not cursor.fetchone()[0]:
                return None
        # Jobs of `--sync` and CSV imports are run by their command.
        chunks = (
            LoadChunk.objects.filter(job__state__in=unfinished)
            .exclude(job__provider="csv")
            .exclude(job__options__contains={"sync": True})
        )
        report.stale_chunks = _ids(
            chunks.filter(state=ChunkState.RUNNING).filter(
                Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
            )
        )
        LoadChunk.objects.filter(id__in=report.stale_chunks).update(
            state=ChunkState.QUEUED,
            heartbeat_at=now,
            error="reclaimed: its worker stopped sending heartbeats",
        )
        if lost_chunks_before is not None:
            report.lost_chunks = _ids(
                chunks.filter(state__in=[ChunkState.PENDING, ChunkState.QUEUED]).filter(
                    Q(heartbeat_at__lt=lost_chunks_before)
                    | Q(heartbeat_at__isnull=True)
                )
            )
            LoadChunk.objects.filter(id__in=report.lost_chunks).update(
                state=ChunkState.QUEUED, heartbeat_at=now
            )
        report.stale_gaps = _ids(
            Gap.objects.filter(state=GapState.REPAIRING, updated_at__lt=stale)
        )
        Gap.objects.filter(id__in=report.stale_gaps).update(
            state=GapState.OPEN, updated_at=now
        )
        if lost_gaps_before is not None:
            report.lost_gaps = _ids(
                Gap.objects.filter(
                    state=GapState.OPEN, updated_at__lt=lost_gaps_before
                ).exclude(id__in=report.stale_gaps)
            )
            Gap.objects.filter(id__in=report.lost_gaps).update(updated_at=now)
    report.jobs_closed = load_jobs_close_finished()
    report.not_sent = _send(report)
    if report.not_sent:
        # Their rows count as handed out: they are sent again once nothing
        # touched them for two periods and the broker's queue is empty.
        raise ConnectionError(f"{report.not_sent} message(s) not sent ({report})")
    return report


def _lost_before(waiting: int | None, quiet, stale):
    if waiting is None:
        return stale
    return quiet if waiting == 0 else None


def _ids(queryset) -> list[int]:
    return list(queryset.order_by("id").values_list("id", flat=True)[:BATCH])


def _send(report: ReclaimReport) -> int:
    """Send the messages; returns how many could not be (they are sent by a
    later pass: their rows are untouched from then on)."""
    from marketdata.tasks import gap_backfill, load_chunk

    work = [(load_chunk, i) for i in report.stale_chunks + report.lost_chunks]
    work += [(gap_backfill, i) for i in report.stale_gaps + report.lost_gaps]
    for sent, (actor, row_id) in enumerate(work):
        try:
            actor.send(row_id)
        except Exception:  # the pass reports it
            logger.debug("reclaimer: send failed", exc_info=True)
            return len(work) - sent
    return 0
