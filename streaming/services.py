"""Writes of the stream worker: its health report, live minute bars, partly stored
minutes and gap reports (bars and instruments through `marketdata.services`)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import orjson

from core.logs import RateLimitedLog, cause
from core.redis import REDIS_ERRORS, key, redis_client, redis_outage
from streaming.selectors import health_key

logger = logging.getLogger(__name__)
# Called from the stream worker's steps: a failure that repeats each step is
# one line a minute.
failures = RateLimitedLog(logger)


def partial_key() -> str:
    """The hash of minutes a stopping worker left half-built, by symbol."""
    return key("streams", "partial")


def feed_health_put(*, worker_id: str, document: dict) -> None:
    """Store one worker's health document (see `streaming.health`)."""
    redis_client().hset(health_key(), worker_id, orjson.dumps(document))


def live_bars_store(*, rows: dict[str, list[tuple]], partial: dict[str, str]) -> int:
    """Upsert closed live minutes (per provider, replacing earlier versions:
    corrections bump `revision`) and refresh the rollups they touch. `partial`
    lists forming minutes stored at shutdown (symbol -> minute ISO time): they
    are remembered so the next start discards and backfills them."""
    from marketdata.models import BarOrigin
    from marketdata.services import bars_upsert
    from marketdata.sparklines import sparklines_minutes_stored

    if partial and not _partial_bars_mark(partial):
        rows = _without_partial(rows, partial)
    written = 0
    touched: dict[int, tuple] = {}
    for provider, provider_rows in rows.items():
        result = bars_upsert(
            rows=provider_rows, provider=provider, origin=BarOrigin.LIVE, replace=True
        )
        written += result.written
        for row in provider_rows:
            low, high = touched.get(row[0], (row[2], row[2]))
            touched[row[0]] = (min(low, row[2]), max(high, row[2]))
    if touched:
        from marketdata.models import Instrument

        classes = dict(
            Instrument.objects.filter(id__in=list(touched)).values_list(
                "id", "asset_class"
            )
        )
        _rollups_refresh_batch(
            spans={
                i: (low, high + timedelta(minutes=1))
                for i, (low, high) in touched.items()
            },
            asset_classes={i: classes.get(i, "equity") for i in touched},
        )
        # The session sparklines pages read from Redis (no bar scan per page).
        sparklines_minutes_stored(
            bars=[(r[0], r[2], r[6]) for rs in rows.values() for r in rs],
            asset_classes=classes,
        )
    return written


def _rollups_refresh_batch(
    *, spans: dict[int, tuple[datetime, datetime]], asset_classes: dict[int, str]
) -> None:
    """All instruments in one batch; when it fails, each instrument alone, so
    one that fails does not hold back the others (its rollups catch up on its
    next write)."""
    from marketdata.rollups import rollups_refresh, rollups_refresh_many

    try:
        rollups_refresh_many(spans=spans, asset_classes=asset_classes)
        return
    except Exception as exc:
        failures.warning(
            "rollups-batch",
            "batched rollup refresh failed, refreshing instruments one by one",
            exc=exc,
        )
    for instrument_id, (start, end) in spans.items():
        try:
            rollups_refresh(
                instrument_id=instrument_id,
                asset_class=asset_classes[instrument_id],
                start=start,
                end=end,
            )
        except Exception as exc:  # rollups catch up on the next write
            failures.warning(
                "rollups",
                "rollup refresh failed for instrument %s",
                instrument_id,
                exc=exc,
            )


def _partial_bars_mark(partial: dict[str, str]) -> bool:
    try:
        redis_client().hset(partial_key(), mapping=partial)
    except Exception as exc:  # Redis away: see _without_partial
        logger.warning("forming minutes not stored at shutdown: %s", cause(exc))
        return False
    return True


def _without_partial(
    rows: dict[str, list[tuple]], partial: dict[str, str]
) -> dict[str, list[tuple]]:
    """Without its marker a stored forming minute would pass for complete at
    the next start: leave it out, the restart backfill fetches it."""
    from marketdata.models import Instrument

    ids = dict(
        Instrument.objects.filter(symbol__in=list(partial)).values_list("id", "symbol")
    )
    return {
        provider: [
            row
            for row in provider_rows
            if partial.get(ids.get(row[0], "")) != row[2].isoformat()
        ]
        for provider, provider_rows in rows.items()
    }


def partial_bars_take_safe(*, symbols: list[str]) -> dict[str, datetime]:
    """`partial_bars_take`, or nothing (left in Redis) when Redis is away."""
    outage = redis_outage()
    if not symbols or not outage.should_try():
        return {}
    try:
        found = partial_bars_take(symbols=symbols)
    except REDIS_ERRORS as exc:
        outage.failed(exc, doing="reading partly stored minutes")
        return {}
    outage.succeeded()
    return found


def partial_bars_take(*, symbols: list[str]) -> dict[str, datetime]:
    """Forming minutes stored at the last shutdown for `symbols` (removed)."""
    if not symbols:
        return {}
    client = redis_client()
    values = client.hmget(partial_key(), symbols)
    found = {
        symbol: datetime.fromisoformat(value.decode())
        for symbol, value in zip(symbols, values, strict=True)
        if value
    }
    if found:
        client.hdel(partial_key(), *found)
    return found


def gaps_report(*, gaps) -> list:
    """Report missed minutes (`streaming.gaps.PendingGap`s) to the gap ledger,
    which enqueues their backfill. Returns the gaps the database did not take
    (an outage): the caller keeps them and tries again. A gap the ledger
    refuses as invalid is logged and dropped; one whose backfill could not be
    enqueued (Redis away) is in the ledger, and the reclaimer re-sends it."""
    from django.db import DatabaseError

    from marketdata.gaps import gap_report
    from marketdata.models import Instrument

    instruments = Instrument.objects.in_bulk([g.instrument_id for g in gaps])
    failed = []
    reported = 0
    for gap in gaps:
        instrument = instruments.get(gap.instrument_id)
        if instrument is None:
            continue  # deleted meanwhile: its bars are gone too
        try:
            gap_report(
                instrument=instrument, start=gap.start, end=gap.end, source="stream"
            )
            reported += 1
        except DatabaseError:
            failed.append(gap)
        except ValueError as exc:
            logger.warning("gap report for %s refused: %s", gap.symbol, exc)
        except Exception as exc:  # stored; the enqueue is retried
            reported += 1
            failures.warning(
                "gap-enqueue",
                "gap backfill for %s not enqueued (the reclaimer sends it)",
                gap.symbol,
                exc=exc,
            )
    if reported:
        logger.info("reported %d gap(s) for backfill", reported)
    return failed
