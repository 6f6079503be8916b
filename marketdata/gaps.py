"""The gap ledger: holes in an instrument's 1-minute bars and their repair.

Anyone who notices a hole (the stream worker after a reconnect, the sweep,
the verifier, an operator in admin) calls `gap_report`; the backfill actor
then fetches the missing minutes from the provider's REST history and stores
them with origin "backfill". Repairs are idempotent upserts, so a gap
repaired twice is harmless; a repair claims its gap atomically, so duplicate
messages are no-ops.

Expected minutes include US equities' extended session (04:00-20:00 New York)
when the instrument's history provider serves it. A repair that fetched the
range once it was over (`REPAIR_SETTLE` after its end) records it
(`checked_at`): minutes the provider has no bar for (illiquid pre- and
post-market minutes) stay absent, and reporting that range again (the sweep
does every few minutes) finds the checked gap and does nothing, instead of
repairing it forever. A repair of a range not over yet (by the wall clock; a
simulator's fast clock runs ahead of it) is not a check: reported again with
minutes still missing, the gap is repaired again, and so is a range the
provider had no bars for yet. Gaps whose backfill message was lost (Redis
away) are re-sent by `marketdata.reclaim`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.logs import RateLimitedLog, cause
from core.minutes import ceil_minute, floor_minute
from marketdata.coverage import minutes_coverage
from marketdata.history import (
    ProviderFactory,
    provider_build,
    validate_page,
)
from marketdata.models import BarOrigin, Gap, GapState, Instrument, Timeframe
from marketdata.providers import serves_extended_hours
from marketdata.providers.base import ProviderError
from marketdata.providers.routing import history_provider_name
from marketdata.rollups import rollups_refresh
from marketdata.services import bars_upsert
from marketdata.transient import is_transient, retry_after_of

logger = logging.getLogger(__name__)
# A broker outage fails every send: one line a minute says so.
send_failures = RateLimitedLog(logger)

# A provider's REST history may lag its stream by a few seconds: a fetch counts
# as a check of the range only this long after the range ended.
REPAIR_SETTLE = timedelta(seconds=30)
MAX_ATTEMPTS = 32767  # Gap.attempts is a smallint
NO_BARS = "the provider has no bars for this range"


def _extended(instrument: Instrument) -> bool:
    return serves_extended_hours(history_provider_name(instrument=instrument))


def _stale() -> datetime:
    """A repair whose gap was not touched since then has lost its worker."""
    return timezone.now() - timedelta(seconds=settings.HISTORY_STALE_SECONDS)


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
    instead; a range already inside a known gap (being repaired, or checked
    with the provider after it was over) is ignored: that gap is returned and
    nothing new is enqueued."""
    start, end = floor_minute(start), ceil_minute(end)
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
        fresh = _stale()
        known = containing.filter(_known()).first()
        if known is None:
            # Repaired before checks were recorded: known while it has no hole.
            known = containing.filter(state=GapState.REPAIRED).first()
            if known is not None and _missing(instrument, start, end) > 0:
                known = None
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
        gap.missing_minutes = _missing(instrument, gap.start, gap.end)
        gap.save()
        if repair:
            gap_enqueue(gap_id=gap.id)
    return gap


def gaps_known(
    *, instrument_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Ranges overlapping [start, end) that `gap_report` would ignore: being
    repaired, or checked with the provider after they were over."""
    return list(
        Gap.objects.filter(instrument_id=instrument_id, start__lt=end, end__gt=start)
        .filter(_known())
        .values_list("start", "end")
    )


def _known() -> Q:
    return (
        Q(state=GapState.REPAIRING, updated_at__gte=_stale())
        # The provider was asked after the range was over: what it lacked
        # then, it lacks for good (illiquid extended-hours minutes). An empty
        # answer before then (a REST history lagging its stream) is not.
        | Q(
            state__in=[GapState.REPAIRED, GapState.UNREPAIRABLE],
            checked_at__isnull=False,
        )
        # refused for good (an unknown symbol, a plan without the data)
        | (Q(state=GapState.UNREPAIRABLE) & ~Q(error=NO_BARS))
    )


def gap_enqueue(*, gap_id: int) -> None:
    """Send the backfill once the transaction commits. A send that fails
    (Redis away) leaves the gap open in the ledger: the reclaimer sends it."""
    from marketdata.tasks import gap_backfill

    def send() -> None:
        try:
            gap_backfill.send(gap_id)
        except Exception as exc:  # recorded; the reclaimer re-sends
            send_failures.warning(
                "send",
                "gap backfill not enqueued (the gap stays open and the workers' "
                "reclaimer sends it once the broker answers)",
                exc=exc,
            )

    transaction.on_commit(send)


def gaps_repair_range(
    *, instrument: Instrument, start: datetime, end: datetime, source: str = "admin"
) -> Gap:
    """Admin "repair range": a gap for the whole range, repaired whatever its
    past (a repaired or unrepairable range is tried again)."""
    start, end = floor_minute(start), ceil_minute(end)
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
    """Expected minutes of [start, end) not stored (extended hours where the
    instrument's history provider serves them)."""
    return minutes_coverage(
        instrument_id=instrument.id,
        asset_class=instrument.asset_class,
        start=start,
        end=end,
        extended=_extended(instrument),
    ).missing


class GapRepairRetry(Exception):
    """A transient failure: the actor tries again after `delay` seconds (the
    provider's Retry-After; None: the actor's own back-off)."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


def gap_repair(
    *,
    gap_id: int,
    provider_factory: ProviderFactory | None = None,
    provider_name: str | None = None,
) -> Gap | None:
    """Fetch and store the gap's minutes. Repaired when the provider had bars
    for it, unrepairable when it has none; `checked_at` records a fetch made
    after the range was over. A transient failure leaves the gap open and
    raises `GapRepairRetry`. A gap another worker is repairing is left alone."""
    with transaction.atomic():
        gap = (
            Gap.objects.select_for_update()
            .select_related("instrument")
            .filter(id=gap_id)
            .first()
        )
        if gap is None or gap.state in (GapState.REPAIRED, GapState.UNREPAIRABLE):
            return gap
        if gap.state == GapState.REPAIRING and gap.updated_at >= _stale():
            return gap  # under way elsewhere (a duplicate message)
        gap.state = GapState.REPAIRING
        gap.attempts = min(gap.attempts + 1, MAX_ATTEMPTS)
        gap.error = ""
        gap.save(update_fields=["state", "attempts", "error", "updated_at"])

    instrument = gap.instrument
    name = provider_name or history_provider_name(instrument=instrument)
    received = added = 0
    fetched_at = timezone.now()
    checked_at = fetched_at if fetched_at >= gap.end + REPAIR_SETTLE else None
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
            Gap.objects.filter(id=gap.id).update(updated_at=timezone.now())
        if added:
            rollups_refresh(
                instrument_id=instrument.id,
                asset_class=instrument.asset_class,
                start=gap.start,
                end=gap.end,
            )
    except ProviderError as exc:
        if not exc.permanent:
            _reopen(gap, exc)
            raise GapRepairRetry(str(exc), delay=retry_after_of(exc)) from exc
        Gap.objects.filter(id=gap.id).update(
            state=GapState.UNREPAIRABLE,
            error=str(exc)[:2000],
            checked_at=checked_at,
            updated_at=timezone.now(),
        )
        gap.refresh_from_db()
        return gap
    except Exception as exc:
        if is_transient(exc):
            _reopen(gap, exc)
            raise GapRepairRetry(cause(exc)) from exc
        raise

    gap.bars_added += added
    gap.state = GapState.REPAIRED if received else GapState.UNREPAIRABLE
    gap.error = "" if received else NO_BARS
    gap.missing_minutes = _missing(instrument, gap.start, gap.end)
    gap.checked_at = checked_at
    gap.save(
        update_fields=[
            "state",
            "bars_added",
            "error",
            "missing_minutes",
            "checked_at",
            "updated_at",
        ]
    )
    logger.info(
        "gap %s %s: %d bars received, %d added", gap.id, gap.state, received, added
    )
    return gap


def _reopen(gap: Gap, exc: BaseException) -> None:
    """Back to open after a transient failure; best effort (the database may
    be what failed): a gap left repairing is reopened once it is stale."""
    try:
        Gap.objects.filter(id=gap.id, state=GapState.REPAIRING).update(
            state=GapState.OPEN, error=cause(exc)[:2000], updated_at=timezone.now()
        )
    except Exception as again:  # the reclaimer takes it up later
        if not is_transient(again):
            raise
