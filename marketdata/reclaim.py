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

Whatever a retry cannot cover, the reclaimer does: `work_reclaim` runs every
HISTORY_RECLAIM_EVERY seconds (default 30; 0 turns it off) in a daemon
thread of every Dramatiq worker process (`ReclaimMiddleware`, registered in
settings' DRAMATIQ_BROKER middleware). One pass, serialized across processes
by a PostgreSQL advisory lock:

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
are left alone. The thread survives outages of the database and Redis: one
log line when a pass first fails, one when passes work again.
"""

from __future__ import annotations

import logging
import threading
import time
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

    @property
    def anything(self) -> bool:
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
        except Exception:
            # The broker went away mid-pass; the pass as a whole reports it.
            logger.debug("reclaimer: send failed", exc_info=True)
            return len(work) - sent
    return 0


class Reclaimer(threading.Thread):
    """The daemon thread: one pass every `every` seconds, whatever fails."""

    def __init__(self, *, broker: dramatiq.Broker, every: float) -> None:
        super().__init__(name="tapeline-reclaimer", daemon=True)
        self.broker = broker
        self.every = every
        self.stopped = threading.Event()
        self.failing_since: float | None = None

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        from django.db import connection

        delay = min(self.every, 5.0)  # soon after boot: a restart is when it matters
        while not self.stopped.wait(delay):
            delay = self.every
            try:
                self.once()
            finally:
                try:
                    connection.close()  # this thread's own; reopened next pass
                except Exception:  # noqa: BLE001 - a broken connection is closed anyway
                    pass

    def once(self) -> ReclaimReport | None:
        try:
            report = work_reclaim(broker=self.broker)
            if report is not None and report.not_sent:
                raise ConnectionError(f"{report.not_sent} message(s) not sent")
        except Exception as exc:  # noqa: BLE001 - outages are waited out
            from marketdata.transient import one_line

            if self.failing_since is None:
                self.failing_since = time.monotonic()
                logger.warning(
                    "reclaimer: %s; trying again every %.0f s",
                    one_line(exc),
                    self.every,
                )
            return None
        if self.failing_since is not None:
            logger.warning(
                "reclaimer: working again after %.0f s",
                time.monotonic() - self.failing_since,
            )
            self.failing_since = None
        if report is not None and report.anything:
            logger.info("reclaimer: %s", report)
        return report


class ReclaimMiddleware(dramatiq.Middleware):
    """Starts the reclaimer in every worker process (`after_worker_boot`)."""

    def __init__(self) -> None:
        self.reclaimer: Reclaimer | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker) -> None:
        every = float(getattr(settings, "HISTORY_RECLAIM_EVERY", 30))
        if every > 0:
            self.reclaimer = Reclaimer(broker=broker, every=every)
            self.reclaimer.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker) -> None:
        if self.reclaimer is not None:
            self.reclaimer.stop()
