"""Reads for alerts: rules, alert history, the rule-change counter."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from alerts.models import RULE_FIELDS, AlertEvent, AlertRule, OpsAlert
from core.redis import key, redis_client
from marketdata.models import Instrument
from marketdata.selectors import bars_page, bars_resampled, instrument_get

SEED_START = datetime(1970, 1, 2, tzinfo=UTC)


def version_key() -> str:
    return key("alerts", "rules", "version")


def changes_key() -> str:
    return key("alerts", "rules", "changes")


# Beyond this many changed ids since the engine's version, reload everything.
MAX_PARTIAL_RELOAD = 5_000

# What the engine reads of a rule: the user's fields (one list, in models)
# plus identity and firing history.
ENGINE_FIELDS = (
    "id",
    "owner_id",
    "instrument_id",
    *(name for name in RULE_FIELDS if name != "active"),
    "last_fired_at",
)


def rules_changes_since(*, version: int | None) -> tuple[int | None, list[int] | None]:
    """(current version, ids changed after `version`) in one Redis round trip.

    ids is None when the caller must reload everything: no known version, the
    counter went backwards (Redis was flushed) or too much changed.
    """
    client = redis_client()
    pipe = client.pipeline(transaction=True)
    pipe.get(version_key())
    if version is not None:
        pipe.zrangebyscore(changes_key(), f"({version}", "+inf")
    results = pipe.execute()
    current = int(results[0]) if results[0] is not None else 0
    if version is None or current < version:
        return current, None
    ids = [int(member) for member in results[1]]
    if len(ids) > MAX_PARTIAL_RELOAD:
        return current, None
    return current, ids


def rules_active_for_engine(
    *, symbols: Iterable[str] | None, ids: Iterable[int] | None = None
) -> list[dict]:
    """Active rules as plain dicts (ENGINE_FIELDS + symbol) for the engine."""
    queryset = AlertRule.objects.filter(active=True)
    if symbols is not None:
        # Rules without one instrument (multi, portfolio) go to every engine,
        # which decides (`AlertEngine._owns`).
        queryset = queryset.filter(
            Q(instrument__symbol__in=list(symbols)) | Q(instrument__isnull=True)
        )
    if ids is not None:
        ids = list(ids)
        if not ids:
            return []
        queryset = queryset.filter(id__in=ids)
    rows = queryset.values(*ENGINE_FIELDS, "instrument__symbol").order_by()
    result = []
    for row in rows.iterator(chunk_size=5000):
        row["symbol"] = row.pop("instrument__symbol") or ""
        result.append(row)
    return result


def minute_bars_before(
    *, instrument_id: int, limit: int, before: datetime | None = None
) -> list:
    """The last `limit` stored 1-minute bars (before `before`), oldest first."""
    instrument = Instrument(pk=instrument_id)
    collected: list = []
    cursor = before
    while len(collected) < limit:
        page_size = min(5000, limit - len(collected))
        page = bars_page(
            instrument=instrument, timeframe="1m", before=cursor, limit=page_size
        )
        collected.extend(page)
        if len(page) < page_size:
            break
        cursor = page[-1].ts
    collected.reverse()
    return collected


def minute_bars_for_seeding(
    *, instrument_id: int, limit: int, before: datetime | None = None
) -> list[tuple[datetime, float, float]]:
    """The last `limit` stored 1-minute bars as (ts, close, volume, open,
    high, low), oldest first."""
    rows = bars_resampled(
        instrument=Instrument(pk=instrument_id),
        timeframe="1m",
        start=SEED_START,
        end=before or timezone.now() + timedelta(minutes=1),
        limit=limit,
        as_float=True,
    )
    return [(row[0], row[4], row[5], row[1], row[2], row[3]) for row in rows]


def closed_bars_for_seeding(
    *, instrument_id: int, timeframe: str, end: datetime, limit: int
) -> list[tuple[datetime, float]]:
    """The last `limit` bars of `timeframe` starting before `end`, resampled
    by the database, as (bucket start, open, high, low, close, volume),
    oldest first."""
    instrument = Instrument.objects.only("id", "asset_class").get(pk=instrument_id)
    rows = bars_resampled(
        instrument=instrument,
        timeframe=timeframe,
        start=SEED_START,
        end=end,
        limit=limit,
        as_float=True,
    )
    return [tuple(row[:6]) for row in rows]


def minute_bars_between(*, instrument, start: datetime, end: datetime) -> list:
    """Stored 1-minute bars with start <= ts < end, oldest first."""
    collected: list = []
    cursor = end
    while True:
        page = bars_page(
            instrument=instrument, timeframe="1m", before=cursor, limit=5000
        )
        page = [bar for bar in page if bar.ts >= start]
        collected.extend(page)
        if len(page) < 5000:
            break
        cursor = page[-1].ts
    collected.reverse()
    return collected


def bars_exist(*, instrument, timeframe: str) -> bool:
    """Whether any bar of `timeframe` can be built for the instrument."""
    rows = bars_resampled(
        instrument=instrument,
        timeframe=timeframe,
        start=SEED_START,
        end=timezone.now() + timedelta(minutes=1),
        limit=1,
    )
    return bool(rows)


def instruments_by_symbol(*, symbols: Iterable[str]) -> dict[str, Instrument]:
    symbols = [s.strip().upper() for s in symbols if s]
    if not symbols:
        return {}
    return {i.symbol: i for i in Instrument.objects.filter(symbol__in=symbols)}


def rules_for_user(*, user) -> QuerySet[AlertRule]:
    return (
        AlertRule.objects.filter(owner=user)
        .select_related("instrument")
        .order_by("instrument__symbol", "id")
    )


def rule_for_user(*, user, rule_id: int) -> AlertRule | None:
    return rules_for_user(user=user).filter(pk=rule_id).first()


def events_for_user(
    *,
    user,
    symbol: str = "",
    kind: str = "",
    rule_id: int | None = None,
    unseen: bool = False,
    since: datetime | None = None,
) -> QuerySet[AlertEvent]:
    queryset = AlertEvent.objects.filter(owner=user).select_related(
        "instrument", "rule"
    )
    if symbol:
        queryset = queryset.filter(instrument__symbol=symbol.upper())
    if kind:
        queryset = queryset.filter(kind=kind)
    if rule_id:
        queryset = queryset.filter(rule_id=rule_id)
    if unseen:
        queryset = queryset.filter(seen_at__isnull=True)
    if since is not None:
        queryset = queryset.filter(ts__gte=since)
    return queryset.order_by("-ts", "-id")


def events_unseen_count(*, user) -> int:
    return AlertEvent.objects.filter(owner=user, seen_at__isnull=True).count()


def events_latest_id(*, user) -> int:
    """The id of the user's last recorded alert (0 for none): alerts with a
    greater id were recorded after a page drawn with it."""
    latest = AlertEvent.objects.filter(owner=user).aggregate(latest=Max("id"))
    return latest["latest"] or 0


def instrument_for_rule(*, symbol: str):
    return instrument_get(symbol=symbol.strip().upper())


def since_days(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)


def ops_alerts_recent(*, limit: int = 50) -> list[OpsAlert]:
    """The newest ops alerts (active and cleared), newest first."""
    return list(OpsAlert.objects.all()[:limit])


def channels_for_user(*, user) -> QuerySet:
    from alerts.models import DeliveryChannel

    return DeliveryChannel.objects.filter(owner=user)


def channel_for_user(*, user, channel_id: int):
    return channels_for_user(user=user).filter(pk=channel_id).first()


def channels_disabled_for_user(*, user) -> list:
    """Channels turned off after failing (the alerts page's notice)."""
    from alerts.delivery_models import TURNED_OFF_BY_OWNER

    return list(
        channels_for_user(user=user)
        .filter(enabled=False, disabled_at__isnull=False)
        .exclude(disabled_reason=TURNED_OFF_BY_OWNER)
    )
