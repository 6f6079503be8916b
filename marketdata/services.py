"""Writes for market data: instruments (and their stream-error marks),
watchlists, the bar table and detected anomalies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

import psycopg
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone

from audit.services import (
    audit_bulk_created,
    audit_bulk_updated,
    audit_order_changed,
    snapshot_for_audit,
)
from marketdata.bar_copy import (
    bar_tuples,
    latest_rows,
    missing_rows,
    rows_write,
    upsert_via_staging,
)
from marketdata.models import (
    Anomaly,
    Bar,
    BarOrigin,
    Instrument,
    Watchlist,
    WatchlistItem,
)


@dataclass(frozen=True, slots=True)
class BarRow:
    instrument_id: int
    timeframe: str
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal | None = None
    trade_count: int | None = None


@dataclass(frozen=True, slots=True)
class UpsertResult:
    written: int  # rows inserted, or changed when replacing
    received: int


def bars_upsert(
    *,
    rows: Iterable[BarRow] | Sequence[tuple],
    provider: str,
    origin: str = BarOrigin.HISTORY,
    replace: bool = False,
) -> UpsertResult:
    """Store bars idempotently with PostgreSQL COPY.

    `replace=False` keeps what is stored (history loads, re-runs are free):
    the stored keys in the rows' time span are read with one index-only scan,
    and only the missing rows are copied straight into the bar table (inside a
    savepoint; should a concurrent writer have stored some meanwhile, the
    path below takes over). Otherwise, and for `replace=True`, rows are copied
    into a temporary staging table and moved with `INSERT … ON CONFLICT`.
    `replace=True` overwrites changed rows and bumps their `revision` (live
    bars and provider corrections). Duplicates inside one call keep the last.
    The stages and their costs: `marketdata.bar_copy`.
    """
    rows = bar_tuples(rows if isinstance(rows, list) else list(rows))
    received = len(rows)
    if not rows:
        return UpsertResult(written=0, received=0)
    rows, spans = latest_rows(rows)
    tail = (provider, str(origin))
    with transaction.atomic(), connection.cursor() as cursor:
        if origin != BarOrigin.LIVE:  # live minutes: the worker merges them
            transaction.on_commit(partial(_sparklines_forget, spans))
        if not replace:
            missing = missing_rows(cursor, rows, spans)
            if missing is not None:
                if not missing:
                    return UpsertResult(written=0, received=received)
                try:
                    with transaction.atomic():
                        rows_write(
                            cursor, table="marketdata_bar", rows=missing, tail=tail
                        )
                    return UpsertResult(written=len(missing), received=received)
                except (IntegrityError, psycopg.IntegrityError):
                    pass  # a concurrent writer stored some meanwhile: safe path
        return UpsertResult(
            written=upsert_via_staging(cursor, rows, tail=tail, replace=replace),
            received=received,
        )


def _sparklines_forget(spans: dict[tuple, tuple]) -> None:
    from marketdata.sparklines import sparklines_forget

    sparklines_forget(instrument_ids={k[0] for k in spans if k[1] == "1m"})


def bar_live_minute_discard(*, instrument_id: int, ts: datetime) -> int:
    """Delete a live minute known to be incomplete, so the gap backfill (which
    never overwrites) can store the provider's full bar. Returns 0 or 1."""
    deleted, _ = Bar.objects.filter(
        instrument_id=instrument_id, timeframe="1m", ts=ts, origin=BarOrigin.LIVE
    ).delete()
    return deleted


def instruments_upsert(*, rows: Iterable[dict]) -> tuple[int, int]:
    """Create or update instruments by symbol; returns (created, updated).

    Every row is validated first (nothing is written when one is invalid);
    then one query finds the existing symbols and two bulk statements write."""
    cleaned: dict[str, tuple[list[str], Instrument]] = {}
    for row in rows:
        instrument = Instrument(**row)
        instrument.full_clean(validate_unique=False)
        cleaned[instrument.symbol] = ([k for k in row if k != "symbol"], instrument)
    with transaction.atomic():
        existing = {
            i.symbol: i
            for i in Instrument.objects.select_for_update().filter(symbol__in=cleaned)
        }
        fields: set[str] = set()
        before = {i.pk: snapshot_for_audit(i) for i in existing.values()}
        for symbol, instrument in existing.items():
            keys, given = cleaned[symbol]
            for key in keys:
                setattr(instrument, key, getattr(given, key))
            fields.update(keys)
        new = [i for symbol, (_, i) in cleaned.items() if symbol not in existing]
        Instrument.objects.bulk_create(new)
        audit_bulk_created(objects=new)
        if existing and fields:
            Instrument.objects.bulk_update(existing.values(), sorted(fields))
            audit_bulk_updated(objects=existing.values(), before=before)
    return len(new), len(existing)


# Unknown-symbol marks are retried after 15 minutes, doubling, at most daily.
STREAM_ERROR_RETRY_FIRST = 15 * 60
STREAM_ERROR_RETRY_MAX = 24 * 3600


def instrument_stream_error_set(*, symbols: list[str], message: str) -> int:
    """Mark instruments a provider named as unknown (shown in admin and on the
    status page). The worker stops asking for them until the retry is due
    (15 min after the first refusal, doubling, at most daily) or the mark is
    cleared in admin."""
    now = timezone.now()
    updated = 0
    for instrument in Instrument.objects.filter(symbol__in=symbols).only(
        "id", "stream_error_retries"
    ):
        delay = min(
            STREAM_ERROR_RETRY_FIRST * 2 ** min(instrument.stream_error_retries, 16),
            STREAM_ERROR_RETRY_MAX,
        )
        updated += Instrument.objects.filter(id=instrument.id).update(
            stream_error=message[:300],
            stream_error_at=now,
            stream_error_retry_at=now + timedelta(seconds=delay),
            stream_error_retries=Least(F("stream_error_retries") + 1, 1000),
        )
    return updated


def instrument_stream_error_clear(*, symbols: list[str]) -> int:
    """A marked instrument streams again: forget its mark and back-off."""
    return (
        Instrument.objects.filter(symbol__in=symbols)
        .exclude(stream_error="")
        .update(
            stream_error="",
            stream_error_at=None,
            stream_error_retry_at=None,
            stream_error_retries=0,
        )
    )


def watchlist_create(*, owner, name: str, symbols: Iterable[str] = ()) -> Watchlist:
    with transaction.atomic():
        position = Watchlist.objects.filter(owner=owner).count()
        watchlist = Watchlist.objects.create(owner=owner, name=name, position=position)
        watchlist_items_add(watchlist=watchlist, symbols=symbols)
    return watchlist


def watchlist_items_add(*, watchlist: Watchlist, symbols: Iterable[str]) -> int:
    """Append the known `symbols` not yet in `watchlist`, in order; returns how many."""
    symbols = list(dict.fromkeys(symbols))
    instruments = {i.symbol: i for i in Instrument.objects.filter(symbol__in=symbols)}
    present = set(watchlist.items.values_list("instrument__symbol", flat=True))
    start = watchlist.items.count()
    new = [s for s in symbols if s in instruments and s not in present]
    created = WatchlistItem.objects.bulk_create(
        WatchlistItem(
            watchlist=watchlist, instrument=instruments[s], position=start + i
        )
        for i, s in enumerate(new)
    )
    audit_bulk_created(objects=created)
    return len(new)


# --- Watchlist editing (every function checks the owner) ------------------------
def _owned_watchlist(*, owner, watchlist_id: int) -> Watchlist:
    """Raises `Watchlist.DoesNotExist` for a missing or someone else's list."""
    return Watchlist.objects.select_for_update().get(pk=watchlist_id, owner=owner)


def _clean_watchlist_name(*, owner, name: str, exclude_id: int | None = None) -> str:
    from django.core.exceptions import ValidationError

    name = (name or "").strip()
    if not name:
        raise ValidationError("Give the watchlist a name.")
    if len(name) > 60:
        raise ValidationError("Names are at most 60 characters.")
    clash = Watchlist.objects.filter(owner=owner, name=name)
    if exclude_id is not None:
        clash = clash.exclude(pk=exclude_id)
    if clash.exists():
        raise ValidationError(f"You already have a watchlist named “{name}”.")
    return name


def watchlist_create_checked(*, owner, name: str) -> Watchlist:
    """Create an empty watchlist from user input (ValidationError on a bad name)."""
    with transaction.atomic():
        name = _clean_watchlist_name(owner=owner, name=name)
        return watchlist_create(owner=owner, name=name)


def watchlist_rename(*, owner, watchlist_id: int, name: str) -> Watchlist:
    with transaction.atomic():
        watchlist = _owned_watchlist(owner=owner, watchlist_id=watchlist_id)
        watchlist.name = _clean_watchlist_name(
            owner=owner, name=name, exclude_id=watchlist.pk
        )
        watchlist.save(update_fields=["name"])
    return watchlist


def watchlist_delete(*, owner, watchlist_id: int) -> None:
    with transaction.atomic():
        _owned_watchlist(owner=owner, watchlist_id=watchlist_id).delete()


def watchlist_reorder(*, owner, watchlist_ids: Sequence[int]) -> None:
    """Put the owner's watchlists in the given order; lists not named keep
    their relative order after the named ones."""
    with transaction.atomic():
        lists = list(Watchlist.objects.select_for_update().filter(owner=owner))
        by_id = {w.pk: w for w in lists}
        before = {w.pk: snapshot_for_audit(w) for w in lists}
        ordered = [by_id[i] for i in dict.fromkeys(watchlist_ids) if i in by_id]
        ordered += [w for w in lists if w not in ordered]
        for position, watchlist in enumerate(ordered):
            watchlist.position = position
        Watchlist.objects.bulk_update(ordered, ["position"])
        audit_bulk_updated(objects=ordered, before=before)


def watchlist_item_add(*, owner, watchlist_id: int, symbol: str) -> WatchlistItem:
    """Append an instrument (ValidationError when unknown or already there)."""
    from django.core.exceptions import ValidationError

    with transaction.atomic():
        watchlist = _owned_watchlist(owner=owner, watchlist_id=watchlist_id)
        instrument = Instrument.objects.filter(
            symbol=(symbol or "").strip().upper(), active=True
        ).first()
        if instrument is None:
            raise ValidationError(f"Unknown instrument “{symbol}”.")
        if watchlist.items.filter(instrument=instrument).exists():
            raise ValidationError(
                f"{instrument.symbol} is already in {watchlist.name}."
            )
        last = watchlist.items.order_by("-position").first()
        return WatchlistItem.objects.create(
            watchlist=watchlist,
            instrument=instrument,
            position=(last.position + 1) if last else 0,
        )


def watchlist_item_remove(*, owner, watchlist_id: int, symbol: str) -> bool:
    """Remove an instrument; False when it was not in the list."""
    with transaction.atomic():
        watchlist = _owned_watchlist(owner=owner, watchlist_id=watchlist_id)
        deleted, _ = watchlist.items.filter(instrument__symbol=symbol).delete()
    return bool(deleted)


def watchlist_item_reorder(*, owner, watchlist_id: int, symbols: Sequence[str]) -> None:
    """Order the list's items as `symbols`; items not named follow, in order."""
    with transaction.atomic():
        watchlist = _owned_watchlist(owner=owner, watchlist_id=watchlist_id)
        items = list(watchlist.items.select_related("instrument"))
        by_symbol = {item.instrument.symbol: item for item in items}
        ordered = [by_symbol[s] for s in dict.fromkeys(symbols) if s in by_symbol]
        ordered += [item for item in items if item not in ordered]
        for position, item in enumerate(ordered):
            item.position = position
        WatchlistItem.objects.bulk_update(ordered, ["position"])
        # One event for the new order, not one per shifted position.
        audit_order_changed(
            obj=watchlist,
            name="items",
            before=[item.instrument.symbol for item in items],
            after=[item.instrument.symbol for item in ordered],
        )


def instruments_viewed(*, instrument_ids: list[int]) -> int:
    """Remember that someone looked at these instruments now (at most one
    write a minute each): it ranks them for a plan's symbol budget."""
    now = timezone.now()
    return (
        Instrument.objects.filter(id__in=instrument_ids)
        .exclude(viewed_at__gte=now - timedelta(minutes=1))
        .update(viewed_at=now)
    )


def anomalies_record(*, anomalies: Sequence[tuple[int, object]]) -> int:
    """Store detected anomalies, given as (instrument id,
    `marketdata.anomalies.Anomaly`); one already stored for the same
    instrument, kind and minute is left as it is (a replay or a restart
    writes nothing twice). Returns how many were given."""
    rows = [
        Anomaly(
            instrument_id=instrument_id,
            kind=a.kind,
            ts=a.ts,
            score=a.score,
            value=a.value,
            baseline=a.baseline,
            direction=a.direction,
            explain=a.explain[:300],
        )
        for instrument_id, a in anomalies
    ]
    if not rows:
        return 0
    Anomaly.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
