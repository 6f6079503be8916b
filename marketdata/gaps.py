"""The gap ledger: holes in an instrument's 1-minute bars and their repair.

Anyone who notices a hole (the stream worker after a reconnect, the verifier,
an operator in admin) calls `gap_report`; the backfill actor then fetches the
missing minutes from the provider's REST history and stores them with origin
"backfill". Repairs are idempotent upserts, so a gap repaired twice is
harmless.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from marketdata import calendar
from marketdata.history import (
    ProviderFactory,
    provider_build,
    validate_page,
)
from marketdata.models import Bar, BarOrigin, Gap, GapState, Instrument, Timeframe
from marketdata.providers.base import ProviderError
from marketdata.rollups import rollups_refresh
from marketdata.services import bars_upsert

logger = logging.getLogger(__name__)

ONE_MINUTE = timedelta(minutes=1)


def history_provider_name(*, instrument: Instrument) -> str:
    """The provider whose REST history serves `instrument` by default."""
    if instrument.is_crypto and getattr(settings, "TAPELINE_CRYPTO_PROVIDER", ""):
        return settings.TAPELINE_CRYPTO_PROVIDER
    return settings.TAPELINE_PROVIDER


def _floor_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _ceil_minute(at: datetime) -> datetime:
    floor = _floor_minute(at)
    return floor if floor == at else floor + ONE_MINUTE


def gap_report(
    *,
    instrument: Instrument,
    start: datetime,
    end: datetime,
    source: str,
    repair: bool = True,
) -> Gap:
    """Record the hole [start, end) (widened to whole minutes) and enqueue its
    backfill after commit. An open gap that overlaps or touches it is widened
    instead; a range already inside a known gap is ignored (that gap is
    returned, nothing new is enqueued)."""
    start, end = _floor_minute(start), _ceil_minute(end)
    if end <= start:
        raise ValueError("gap end must be after its start")
    with transaction.atomic():
        Instrument.objects.select_for_update().filter(pk=instrument.pk).first()
        touching = Gap.objects.filter(
            instrument=instrument, start__lte=end, end__gte=start
        )
        containing = touching.filter(start__lte=start, end__gte=end).exclude(
            state=GapState.OPEN
        )
        # A repair whose worker died long ago does not count as under way.
        fresh = timezone.now() - timedelta(seconds=settings.HISTORY_STALE_SECONDS)
        known = containing.filter(
            Q(state=GapState.REPAIRING, updated_at__gte=fresh)
            | Q(state=GapState.UNREPAIRABLE)
        ).first()
        if known is None:
            known = containing.filter(state=GapState.REPAIRED).first()
            if known is not None and _missing(instrument, start, end) > 0:
                known = None  # repaired before, holes again: a new report
        if known is not None:
            return known
        open_gaps = list(
            touching.filter(
                Q(state=GapState.OPEN)
                | Q(state=GapState.REPAIRING, updated_at__lt=fresh)
            ).order_by("start")
        )
        if open_gaps:
            gap = open_gaps[0]
            gap.state = GapState.OPEN
            gap.start = min([start, *(g.start for g in open_gaps)])
            gap.end = max([end, *(g.end for g in open_gaps)])
            Gap.objects.filter(id__in=[g.id for g in open_gaps[1:]]).delete()
        else:
            gap = Gap(instrument=instrument, start=start, end=end, source=source[:16])
        gap.missing_minutes = calendar.expected_minute_count(
            instrument.asset_class, gap.start, gap.end
        )
        gap.save()
        if repair:
            gap_enqueue(gap_id=gap.id)
    return gap


def gap_enqueue(*, gap_id: int) -> None:
    from marketdata.tasks import gap_backfill

    transaction.on_commit(lambda: gap_backfill.send(gap_id))


def gaps_repair_range(
    *, instrument: Instrument, start: datetime, end: datetime, source: str = "admin"
) -> Gap:
    """Admin "repair range": a gap for the whole range, repaired whatever its
    past (a repaired or unrepairable range is tried again)."""
    start, end = _floor_minute(start), _ceil_minute(end)
    with transaction.atomic():
        gap = Gap.objects.create(
            instrument=instrument,
            start=start,
            end=end,
            source=source[:16],
            missing_minutes=_missing(instrument, start, end),
        )
        gap_enqueue(gap_id=gap.id)
    return gap


def _missing(instrument: Instrument, start: datetime, end: datetime) -> int:
    expected = calendar.expected_minute_count(instrument.asset_class, start, end)
    stored = Bar.objects.filter(
        instrument=instrument, timeframe=Timeframe.MINUTE, ts__gte=start, ts__lt=end
    ).count()
    return max(0, expected - stored)


class GapRepairRetry(Exception):
    """A transient provider failure: the actor should try again later."""


def gap_repair(
    *,
    gap_id: int,
    provider_factory: ProviderFactory | None = None,
    provider_name: str | None = None,
) -> Gap:
    """Fetch and store the gap's minutes. Repaired when the provider had bars
    for it, unrepairable when it has none; a transient failure leaves the gap
    open and raises `GapRepairRetry`."""
    with transaction.atomic():
        gap = (
            Gap.objects.select_for_update()
            .select_related("instrument")
            .filter(id=gap_id)
            .first()
        )
        if gap is None or gap.state in (GapState.REPAIRED, GapState.UNREPAIRABLE):
            return gap
        gap.state = GapState.REPAIRING
        gap.attempts += 1
        gap.error = ""
        gap.save(update_fields=["state", "attempts", "error", "updated_at"])

    instrument = gap.instrument
    name = provider_name or history_provider_name(instrument=instrument)
    received = added = 0
    try:
        if provider_factory is not None:
            provider = provider_factory(name, instrument)
        else:
            provider = provider_build(name=name, instruments=[instrument])
        for page in provider.fetch_bars(
            symbol=instrument.symbol, start=gap.start, end=gap.end, timeframe="1m"
        ):
            result = validate_page(
                page,
                instrument_id=instrument.id,
                timeframe=Timeframe.MINUTE,
                start=gap.start,
                end=gap.end,
            )
            received += len(result.rows)
            if result.rows:
                added += bars_upsert(
                    rows=result.rows, provider=name, origin=BarOrigin.BACKFILL
                ).written
    except ProviderError as exc:
        state = GapState.UNREPAIRABLE if exc.permanent else GapState.OPEN
        Gap.objects.filter(id=gap.id).update(state=state, error=str(exc)[:2000])
        gap.refresh_from_db()
        if not exc.permanent:
            raise GapRepairRetry(str(exc)) from exc
        return gap

    if added:
        rollups_refresh(
            instrument_id=instrument.id,
            asset_class=instrument.asset_class,
            start=gap.start,
            end=gap.end,
        )
    gap.bars_added += added
    gap.state = GapState.REPAIRED if received else GapState.UNREPAIRABLE
    gap.error = "" if received else "the provider has no bars for this range"
    gap.missing_minutes = _missing(instrument, gap.start, gap.end)
    gap.save(
        update_fields=["state", "bars_added", "error", "missing_minutes", "updated_at"]
    )
    logger.info(
        "gap %s %s: %d bars received, %d added", gap.id, gap.state, received, added
    )
    return gap
