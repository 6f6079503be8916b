"""Whether a range needs fetching at all (an earlier chunk fetched it, or
every expected bar is stored), and the `--check-only` report built on it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Max, Min

from marketdata.coverage import Coverage, range_coverage
from marketdata.history.plan import chunk_ranges
from marketdata.models import Bar, ChunkState, Instrument, LoadChunk
from marketdata.providers import serves_extended_hours


def range_covered(
    *,
    instrument: Instrument,
    timeframe: str,
    start: datetime,
    end: datetime,
    provider: str | None = None,
    exclude_chunk_id: int | None = None,
) -> bool:
    """True when [start, end) needs no fetch: an earlier chunk of `provider`
    fetched it completely (its own record), or every bar the calendar expects
    is already stored: the expected SET, with the extended session where the
    provider serves it (`marketdata.coverage`), never a count."""
    earlier = LoadChunk.objects.filter(
        instrument_id=instrument.id,
        timeframe=timeframe,
        state=ChunkState.DONE,
        start__lte=start,
        covered_until__gte=end,
    )
    if provider:
        earlier = earlier.filter(job__provider=provider)
    if exclude_chunk_id is not None:
        earlier = earlier.exclude(id=exclude_chunk_id)
    if earlier.exists():
        return True
    return stored_coverage(
        instrument=instrument,
        timeframe=timeframe,
        start=start,
        end=end,
        provider=provider,
    ).complete


def stored_coverage(
    *,
    instrument: Instrument,
    timeframe: str,
    start: datetime,
    end: datetime,
    provider: str | None = None,
) -> Coverage:
    """Expected and stored-of-expected bars in [start, end) for `provider`
    (default: the instrument's history provider)."""
    if provider is None:
        from marketdata.providers.routing import history_provider_name

        provider = history_provider_name(instrument=instrument)
    return range_coverage(
        instrument_id=instrument.id,
        asset_class=instrument.asset_class,
        timeframe=timeframe,
        start=start,
        end=end,
        extended=serves_extended_hours(provider),
    )


def chunk_covered(*, chunk: LoadChunk) -> bool:
    return range_covered(
        instrument=chunk.instrument,
        timeframe=chunk.timeframe,
        start=chunk.start,
        end=chunk.end,
        provider=chunk.job.provider,
        exclude_chunk_id=chunk.id,
    )


def coverage_check(
    *,
    instruments: Iterable[Instrument],
    timeframe: str,
    start: datetime,
    end: datetime,
    provider: str | None = None,
) -> list[dict]:
    """What a load would do, fetching nothing: per instrument, stored bars,
    expected bars (with the extended session where `provider`, by default
    the instrument's history provider, serves it), how many of those are
    stored and how many chunks are already covered."""
    report = []
    for instrument in instruments:
        stored = Bar.objects.filter(
            instrument=instrument, timeframe=timeframe, ts__gte=start, ts__lt=end
        ).aggregate(n=Count("ts"), first=Min("ts"), last=Max("ts"))
        cover = stored_coverage(
            instrument=instrument,
            timeframe=timeframe,
            start=start,
            end=end,
            provider=provider,
        )
        ranges = chunk_ranges(timeframe=timeframe, start=start, end=end)
        covered = sum(
            1
            for lo, hi in ranges
            if range_covered(
                instrument=instrument,
                timeframe=timeframe,
                start=lo,
                end=hi,
                provider=provider,
            )
        )
        report.append(
            {
                "symbol": instrument.symbol,
                "stored": stored["n"],
                "expected": cover.expected,
                "coverage": (
                    cover.present / cover.expected * 100.0 if cover.expected else 0.0
                ),
                "first": stored["first"],
                "last": stored["last"],
                "chunks": len(ranges),
                "chunks_covered": covered,
            }
        )
    return report
