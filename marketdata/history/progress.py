"""Reads that report a job: progress while it runs, and per instrument
summaries, failures and invalid-bar examples once it is over."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q, Sum

from marketdata.models import ChunkState, LoadChunk, LoadJob


@dataclass(frozen=True, slots=True)
class JobProgress:
    job_id: int
    state: str
    chunks: int
    finished: int
    done: int
    skipped: int
    failed: int
    running: int
    bars_added: int
    bars_received: int
    invalid_bars: int

    @property
    def complete(self) -> bool:
        return self.finished >= self.chunks


def load_job_progress(*, job_id: int) -> JobProgress:
    job = LoadJob.objects.get(id=job_id)
    totals = LoadChunk.objects.filter(job_id=job_id).aggregate(
        chunks=Count("id"),
        done=Count("id", filter=Q(state=ChunkState.DONE)),
        skipped=Count("id", filter=Q(state=ChunkState.SKIPPED)),
        failed=Count("id", filter=Q(state=ChunkState.FAILED)),
        running=Count("id", filter=Q(state=ChunkState.RUNNING)),
        bars_added=Sum("bars_added"),
        bars_received=Sum("bars_received"),
        invalid_bars=Sum("invalid_bars"),
    )
    finished = totals["done"] + totals["skipped"] + totals["failed"]
    return JobProgress(
        job_id=job_id,
        state=job.state,
        chunks=totals["chunks"],
        finished=finished,
        done=totals["done"],
        skipped=totals["skipped"],
        failed=totals["failed"],
        running=totals["running"],
        bars_added=totals["bars_added"] or 0,
        bars_received=totals["bars_received"] or 0,
        invalid_bars=totals["invalid_bars"] or 0,
    )


def load_job_summary(*, job_id: int) -> list[dict]:
    """Per instrument: bars added, invalid, chunk states, years covered, time."""
    rows = (
        LoadChunk.objects.filter(job_id=job_id)
        .values("instrument__symbol")
        .annotate(
            bars_added=Sum("bars_added"),
            bars_received=Sum("bars_received"),
            invalid_bars=Sum("invalid_bars"),
            chunks=Count("id"),
            failed=Count("id", filter=Q(state=ChunkState.FAILED)),
            skipped=Count("id", filter=Q(state=ChunkState.SKIPPED)),
            first=Min("start"),
            last=Max("end"),
            started=Min("started_at"),
            finished=Max("finished_at"),
        )
        .order_by("instrument__symbol")
    )
    summary = []
    for row in rows:
        seconds = (
            (row["finished"] - row["started"]).total_seconds()
            if row["started"] and row["finished"]
            else 0.0
        )
        years = (row["last"] - row["first"]).days / 365.25 if row["first"] else 0.0
        summary.append(
            {
                "symbol": row["instrument__symbol"],
                "bars_added": row["bars_added"] or 0,
                "bars_received": row["bars_received"] or 0,
                "invalid_bars": row["invalid_bars"] or 0,
                "chunks": row["chunks"],
                "failed": row["failed"],
                "skipped": row["skipped"],
                "years": round(years, 2),
                "seconds": round(seconds, 1),
            }
        )
    return summary


def load_job_failures(*, job_id: int, limit: int = 10) -> list[LoadChunk]:
    return list(
        LoadChunk.objects.filter(job_id=job_id, state=ChunkState.FAILED)
        .select_related("instrument")
        .order_by("instrument__symbol", "start")[:limit]
    )


def load_job_invalid_examples(
    *, job_id: int, limit: int = 10
) -> list[tuple[str, dict]]:
    examples = []
    for chunk in (
        LoadChunk.objects.filter(job_id=job_id, invalid_bars__gt=0)
        .select_related("instrument")
        .order_by("instrument__symbol", "start")
    ):
        for example in chunk.invalid_examples:
            examples.append((chunk.instrument.symbol, example))
            if len(examples) >= limit:
                return examples
    return examples
