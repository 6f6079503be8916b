"""Reads for market data. Other apps read instruments and watchlists here.

Over 400 lines: the app's reads live here (reads go in `selectors.py`),
most of them one query each.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db.models import (
    Case,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)

from marketdata.models import (
    Anomaly,
    Bar,
    Instrument,
    Position,
    Watchlist,
    WatchlistItem,
)


def instrument_get(*, symbol: str) -> Instrument | None:
    return Instrument.objects.filter(symbol=symbol).first()


def instruments_by_symbol(*, symbols) -> dict[str, Instrument]:
    return {i.symbol: i for i in Instrument.objects.filter(symbol__in=list(symbols))}


def instruments_search(*, query: str, limit: int = 20) -> list[Instrument]:
    """Type-ahead: exact symbol first, then symbol prefix, then name matches."""
    query = query.strip()
    if not query:
        return []
    upper = query.upper()
    return list(
        Instrument.objects.filter(active=True)
        .filter(Q(symbol__istartswith=query) | Q(name__icontains=query))
        .annotate(
            rank=Case(
                When(symbol=upper, then=Value(0)),
                When(symbol__startswith=upper, then=Value(1)),
                When(name__istartswith=query, then=Value(2)),
                default=Value(3),
                output_field=IntegerField(),
            )
        )
        .order_by("rank", "symbol")[:limit]
    )


def watchlists_for_user(*, user) -> QuerySet[Watchlist]:
    return Watchlist.objects.filter(owner=user).prefetch_related("items__instrument")


def instruments_in_use() -> QuerySet[Instrument]:
    """Instruments that appear in any watchlist or open position (active only)."""
    return (
        Instrument.objects.filter(active=True)
        .filter(
            Q(pk__in=WatchlistItem.objects.values("instrument"))
            | Q(pk__in=Position.objects.open().values("instrument"))
        )
        .distinct()
    )


def bars_page(
    *,
    instrument,
    timeframe: str,
    origin: str | None = None,
    before=None,
    limit: int = 100,
):
    """Newest-first page of stored bars, keyed by time (no counts, no offsets)."""
    queryset = Bar.objects.filter(instrument=instrument, timeframe=timeframe)
    if origin:
        queryset = queryset.filter(origin=origin)
    if before is not None:
        queryset = queryset.filter(ts__lt=before)
    return list(queryset.order_by("-ts")[:limit])


def instruments_stream_info(*, symbols) -> dict[str, dict]:
    """What a browser socket needs per known, active symbol: name, price
    decimals and asset class. Unknown or inactive symbols are absent."""
    return {
        i.symbol: {
            "name": i.name,
            "decimals": i.price_decimals,
            "asset_class": i.asset_class,
        }
        for i in Instrument.objects.filter(symbol__in=list(symbols), active=True)
    }


def watchlist_get_for_owner(*, owner, watchlist_id: int) -> Watchlist | None:
    """The owner's watchlist, or None (also when it belongs to someone else)."""
    return Watchlist.objects.filter(owner=owner, pk=watchlist_id).first()


def session_latest(*, asset_class: str, at=None):
    """The session in progress at `at`, else the most recent one before it."""
    from datetime import timedelta

    from django.utils import timezone

    from marketdata.calendar import session_for

    at = at or timezone.now()
    day = at.date() + timedelta(days=1)
    for offset in range(0, 15):
        session = session_for(asset_class, day - timedelta(days=offset))
        if session is not None and session.open <= at:
            return session
    return None


def bars_last_close(*, instrument_ids) -> dict[int, tuple]:
    """Each instrument's newest stored minute: {id: (ts, close)}. What pages
    show when the live snapshots (Redis) are out of reach."""
    from django.db import connection

    ids = list(instrument_ids)
    if not ids:
        return {}
    with connection.cursor() as cursor:
        # One backward index probe per instrument (and partition), not a scan.
        cursor.execute(
            "SELECT i.id, b.ts, b.close FROM unnest(%s::bigint[]) AS i(id) "
            "CROSS JOIN LATERAL (SELECT ts, close FROM marketdata_bar "
            "WHERE instrument_id = i.id AND timeframe = '1m' "
            "ORDER BY ts DESC LIMIT 1) AS b",
            [ids],
        )
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}


SPARKLINE_POINTS = 120


def sparkline_bucket(session) -> int:
    """Minutes per sparkline point for `session` (at most `SPARKLINE_POINTS`)."""
    from math import ceil

    return max(1, ceil(session.minutes / SPARKLINE_POINTS))


def session_bucket_closes(*, instruments, at=None) -> dict[int, tuple]:
    """The last stored minute of each sparkline bucket of each instrument's
    latest session: `{id: (session or None, bucket minutes,
    [(bucket start, minute start, close), ...])}`, times in epoch seconds,
    buckets in order (`marketdata.sparklines` keeps the minute to merge)."""
    from django.db import connection

    by_class: dict[str, list] = {}
    for instrument in instruments:
        by_class.setdefault(instrument.asset_class, []).append(instrument)
    result: dict[int, tuple] = {}
    with connection.cursor() as cursor:
        for asset_class, members in by_class.items():
            session = session_latest(asset_class=asset_class, at=at)
            if session is None:
                for instrument in members:
                    result[instrument.pk] = (None, 1, [])
                continue
            bucket = sparkline_bucket(session)
            closes: dict[int, list] = {i.pk: [] for i in members}
            # The last close of each bucket: one sort (DISTINCT ON), no
            # per-group array sorts; epoch seconds and float8 from the
            # database, as Python-side timestamptz/numeric loaders cost more.
            cursor.execute(
                "SELECT DISTINCT ON (instrument_id, bucket) instrument_id, "
                "extract(epoch FROM date_bin(%s::interval, ts, %s))::float8 AS bucket, "
                "extract(epoch FROM ts)::float8, close::float8 "
                "FROM marketdata_bar "
                "WHERE timeframe = '1m' AND instrument_id = ANY(%s) "
                "AND ts >= %s AND ts < %s "
                "ORDER BY instrument_id, bucket, ts DESC",
                [
                    f"{bucket} minutes",
                    session.open,
                    list(closes),
                    session.open,
                    session.close,
                ],
            )
            for instrument_id, bucket_start, ts, close in cursor.fetchall():
                closes[instrument_id].append((bucket_start, ts, close))
            for instrument in members:
                result[instrument.pk] = (session, bucket, closes[instrument.pk])
    return result


def session_sparklines(*, instruments, at=None) -> dict[str, dict]:
    """Closing prices of each instrument's latest session from the stored
    minute bars, bucketed in SQL to at most `SPARKLINE_POINTS` points.

    Returns `{symbol: {"bucket": minutes, "start": session open (epoch s),
    "points": [float, ...], "last": start of the last point's bucket (epoch s)
    or None}}` for every instrument, points possibly empty. Pages read the
    copy kept in Redis (`marketdata.sparklines.sparklines_get`)."""
    instruments = list(instruments)
    closes = session_bucket_closes(instruments=instruments, at=at)
    result: dict[str, dict] = {}
    for instrument in instruments:
        session, bucket, rows = closes[instrument.pk]
        result[instrument.symbol] = {
            "bucket": bucket,
            "start": session.open.timestamp() if session is not None else 0,
            "points": [close for _, _, close in rows],
            "last": rows[-1][0] if rows else None,
        }
    return result


# --- history, gaps and chart bars (issue 5) ---------------------------------------
def bars_resampled(
    *,
    instrument: Instrument,
    timeframe: str,
    start,
    end,
    limit: int = 1000,
    as_float: bool = False,
) -> list[tuple]:
    """The newest `limit` bars of `timeframe` (1m, 5m, 15m, 1h, 1d) starting in
    [start, end), oldest first, as (ts, open, high, low, close, volume,
    trade_count). Aggregation runs in the database (stored rollups for 1h/1d);
    daily bars of equities cover the regular NYSE session, stamped at New
    York midnight. Stored hourly and daily bars (imports, provider daily
    loads) fill ranges without minutes; minutes win where both exist."""
    from marketdata.rollups import bars_resampled_rows

    return bars_resampled_rows(
        instrument_id=instrument.id,
        asset_class=instrument.asset_class,
        timeframe=timeframe,
        start=start,
        end=end,
        limit=limit,
        numeric="float8" if as_float else "numeric",
    )


def bars_exist_before(*, instrument: Instrument, timeframe: str, before, start) -> bool:
    """Whether anything older than `before` (and not before `start`) exists for
    `timeframe`: 1d may also come from stored daily or hourly bars, 1h from
    stored hourly bars, the rest from minutes only."""
    sources = {"1d": ["1m", "1h", "1d"], "1h": ["1m", "1h"]}.get(timeframe, ["1m"])
    return Bar.objects.filter(
        instrument=instrument, ts__lt=before, ts__gte=start, timeframe__in=sources
    ).exists()


def bars_session_figures(
    *, instrument_id: int, day_start: datetime, day_end: datetime
) -> dict:
    """Session open/high/low/volume from today's stored minute bars and the
    previous close (the last daily bar before today, else the last minute bar
    before today). Lets a restarted stream worker show the whole day at once."""
    minutes = Bar.objects.filter(
        instrument_id=instrument_id, timeframe="1m", ts__gte=day_start, ts__lt=day_end
    )
    today = minutes.aggregate(
        high=Max("high"),
        low=Min("low"),
        volume=Sum("volume"),
        first=Min("ts"),
        last_ts=Max("ts"),
    )
    figures: dict = {"day_start": day_start, "day_end": day_end}
    if today["first"] is not None:
        first = minutes.filter(ts=today["first"]).values_list("open", flat=True).first()
        last = (
            minutes.filter(ts=today["last_ts"]).values_list("close", flat=True).first()
        )
        figures.update(
            open=first,
            high=today["high"],
            low=today["low"],
            volume=today["volume"] or Decimal(0),
            last=last,
        )
    previous_daily = (
        Bar.objects.filter(
            instrument_id=instrument_id, timeframe="1d", ts__lt=day_start
        )
        .order_by("-ts")
        .values_list("close", "ts")
        .first()
    )
    previous_minute = (
        Bar.objects.filter(
            instrument_id=instrument_id, timeframe="1m", ts__lt=day_start
        )
        .order_by("-ts")
        .values_list("close", "ts")
        .first()
    )
    candidates = [c for c in (previous_daily, previous_minute) if c is not None]
    if candidates:
        # The newer of the two: a daily bar stamped at midnight may be older
        # than the last minute of the previous session.
        figures["prev_close"] = max(candidates, key=lambda c: c[1])[0]
    return figures


def bar_last_minute_ts(*, instrument_id: int) -> datetime | None:
    """The start of the newest stored minute bar of an instrument."""
    return (
        Bar.objects.filter(instrument_id=instrument_id, timeframe="1m")
        .order_by("-ts")
        .values_list("ts", flat=True)
        .first()
    )


def load_jobs_recent(*, limit: int = 10) -> list[dict]:
    """Newest load jobs with their chunk counts and bars, for the status page."""
    from django.db.models import Count, Sum

    from marketdata.models import ChunkState, LoadJob

    jobs = LoadJob.objects.annotate(
        chunk_count=Count("chunks"),
        chunks_finished=Count(
            "chunks",
            filter=Q(
                chunks__state__in=[
                    ChunkState.DONE,
                    ChunkState.SKIPPED,
                    ChunkState.FAILED,
                ]
            ),
        ),
        chunks_failed=Count("chunks", filter=Q(chunks__state=ChunkState.FAILED)),
        bars_added=Sum("chunks__bars_added"),
        invalid_bars=Sum("chunks__invalid_bars"),
    ).order_by("-created_at")[:limit]
    return [
        {
            "id": job.id,
            "provider": job.provider,
            "timeframe": job.timeframe,
            "start": job.start,
            "end": job.end,
            "symbols": job.symbols,
            "state": job.state,
            "created_at": job.created_at,
            "finished_at": job.finished_at,
            "chunks": job.chunk_count,
            "chunks_finished": job.chunks_finished,
            "chunks_failed": job.chunks_failed,
            "bars_added": job.bars_added or 0,
            "invalid_bars": job.invalid_bars or 0,
        }
        for job in jobs
    ]


def anomalies_filtered(
    *,
    symbol: str | None = None,
    kind: str | None = None,
    start=None,
    end=None,
    min_score: float | None = None,
) -> QuerySet[Anomaly]:
    """Detected anomalies, newest first, with their instrument."""
    queryset = Anomaly.objects.select_related("instrument")
    if symbol:
        queryset = queryset.filter(instrument__symbol=symbol)
    if kind:
        queryset = queryset.filter(kind=kind)
    if start is not None:
        queryset = queryset.filter(ts__gte=start)
    if end is not None:
        queryset = queryset.filter(ts__lt=end)
    if min_score is not None:
        queryset = queryset.filter(score__gte=min_score)
    return queryset.order_by("-ts", "instrument__symbol", "kind")


class StoredMinute(NamedTuple):
    ts: datetime
    close: Decimal
    volume: Decimal
    trade_count: int | None


def minute_bars_since(*, instrument_ids, since) -> dict[int, list[StoredMinute]]:
    """Stored 1-minute bars of each instrument from `since`, oldest first
    (what the stream worker's anomaly detectors start from)."""
    out: dict[int, list[StoredMinute]] = {i: [] for i in instrument_ids}
    rows = (
        Bar.objects.filter(
            instrument_id__in=list(instrument_ids), timeframe="1m", ts__gte=since
        )
        .order_by("instrument_id", "ts")
        .values_list("instrument_id", "ts", "close", "volume", "trade_count")
    )
    for instrument_id, *minute in rows.iterator(chunk_size=5000):
        out[instrument_id].append(StoredMinute(*minute))
    return out
