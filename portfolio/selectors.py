"""Reads of positions and transactions, and their valuation at given prices.

Valuation takes the snapshot documents the caller already has (the portfolio
page reads them once for its live prices), so figures here and in
static/js/portfolio.js come from the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from django.db.models import QuerySet

from marketdata.calendar import market_date
from marketdata.models import Position, Transaction
from portfolio.ledger import ZERO, Entry, Holding, day_pl, day_split, fold


def positions_for_owner(*, owner) -> QuerySet[Position]:
    return (
        Position.objects.filter(owner=owner)
        .select_related("instrument")
        .order_by("instrument__symbol")
    )


def position_get_for_owner(*, owner, position_id: int) -> Position | None:
    return positions_for_owner(owner=owner).filter(pk=position_id).first()


def transaction_get_for_owner(*, owner, transaction_id: int) -> Transaction | None:
    return (
        Transaction.objects.select_related("position__instrument")
        .filter(pk=transaction_id, position__owner=owner)
        .first()
    )


def transactions_export_rows(*, owner, position_id: int | None = None) -> QuerySet:
    """(date, symbol, kind, quantity, price, fee, note) tuples, by symbol then
    in the order they apply: plain tuples, as models cost ~10x for a big book."""
    rows = Transaction.objects.filter(position__owner=owner)
    if position_id is not None:
        rows = rows.filter(position_id=position_id)
    return rows.order_by("position__instrument__symbol", "date", "id").values_list(
        "date",
        "position__instrument__symbol",
        "kind",
        "quantity",
        "price",
        "fee",
        "note",
    )


def recent_transactions(*, owner, limit: int) -> list[Transaction]:
    return list(
        Transaction.objects.filter(position__owner=owner)
        .select_related("position__instrument")
        .order_by("-date", "-id")[:limit]
    )


def _decimal(value) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def session_day(*, asset_class: str, snapshot: dict) -> date:
    """The trading day the snapshot's prices belong to (its previous close is
    the close before that day): exchange-local for equities, UTC for crypto."""
    try:
        at = datetime.fromisoformat(snapshot["ts"])
    except (KeyError, TypeError, ValueError):
        at = None
    return market_date(asset_class, at)


@dataclass(slots=True)
class Valued:
    position: Position
    holding: Holding
    last: Decimal | None = None
    prev_close: Decimal | None = None
    held_before: Decimal = ZERO  # at the start of the snapshot's session
    day_flow: Decimal = ZERO  # cash of the session's transactions
    value: Decimal | None = None
    unrealized: Decimal | None = None
    day: Decimal | None = None
    total: Decimal | None = None
    return_pct: Decimal | None = None
    weight: Decimal | None = None
    snapshot: dict = field(default_factory=dict)

    @property
    def instrument(self):
        return self.position.instrument


@dataclass(slots=True)
class Valuation:
    open: list[Valued]
    closed: list[Valued]
    value: Decimal = ZERO
    day: Decimal = ZERO
    unrealized: Decimal = ZERO
    realized: Decimal = ZERO
    total: Decimal = ZERO


def _entries(positions: list[Position]) -> dict[int, list[Entry]]:
    """Each position's entries in the order they apply, in one query of plain
    tuples (a book of 10,000 transactions renders in well under a second)."""
    found: dict[int, list[Entry]] = {p.pk: [] for p in positions}
    rows = (
        Transaction.objects.filter(position_id__in=list(found))
        .order_by("date", "id")
        .values_list("position_id", "kind", "date", "quantity", "price", "fee")
    )
    for position_id, *fields in rows:
        found[position_id].append(Entry(*fields))
    for position in positions:
        if not found[position.pk] and position.quantity:
            # Set as an aggregate, never through a transaction: an opening buy
            # from before any session, so all of it counts as held yesterday.
            found[position.pk] = [
                Entry("buy", date.min, position.quantity, position.average_cost)
            ]
    return found


def portfolio_value(
    *, positions: list[Position], snapshots: dict[str, dict]
) -> Valuation:
    """Every position valued at its snapshot's `last` (day P/L against its
    `prev_close`); a position without a price keeps None for what needs one."""
    valuation = Valuation(open=[], closed=[])
    by_position = _entries(positions)
    for position in positions:
        entries = by_position[position.pk]
        holding = fold(entries)
        snap = snapshots.get(position.instrument.symbol) or {}
        row = Valued(position=position, holding=holding, snapshot=snap)
        row.last = _decimal(snap.get("last"))
        row.prev_close = _decimal(snap.get("prev_close"))
        row.held_before, row.day_flow = day_split(
            entries,
            day=session_day(asset_class=position.instrument.asset_class, snapshot=snap),
        )
        valuation.realized += holding.realized
        if row.last is not None:
            row.value = holding.quantity * row.last
            row.unrealized = row.value - holding.cost
            row.total = holding.realized + row.unrealized
            row.day = day_pl(
                quantity=holding.quantity,
                held_before=row.held_before,
                flow=row.day_flow,
                last=row.last,
                prev_close=row.prev_close,
            )
            valuation.value += row.value
            valuation.unrealized += row.unrealized
            valuation.day += row.day or ZERO
        elif not holding.quantity:
            row.total = holding.realized
        if row.total is not None and holding.invested:
            row.return_pct = row.total / holding.invested * 100
        (valuation.open if holding.quantity else valuation.closed).append(row)
    for row in valuation.open:
        if row.value is not None and valuation.value:
            row.weight = row.value / valuation.value * 100
    valuation.total = valuation.realized + valuation.unrealized
    return valuation


class PortfolioTerm(NamedTuple):
    """What a position adds to its owner's value and day P/L besides prices
    (for the alert engine, which prices them live): value = quantity × last,
    day P/L = `day_pl(quantity, held_before, flow, last, prev_close)`."""

    symbol: str
    quantity: Decimal
    held_before: Decimal
    flow: Decimal


def portfolio_terms(*, owner_ids, at: datetime) -> dict[int, list[PortfolioTerm]]:
    """Per owner, the positions that count in `portfolio_value` for the
    session holding `at`: open ones, and closed ones traded in the session
    (their day P/L). Same folding as `portfolio_value`."""
    positions = list(
        Position.objects.filter(owner_id__in=list(owner_ids))
        .select_related("instrument")
        .order_by("owner_id", "instrument__symbol")
    )
    by_position = _entries(positions)
    stamp = {"ts": at.isoformat()}
    terms: dict[int, list[PortfolioTerm]] = {}
    for position in positions:
        entries = by_position[position.pk]
        holding = fold(entries)
        day = session_day(asset_class=position.instrument.asset_class, snapshot=stamp)
        held_before, flow = day_split(entries, day=day)
        if not (holding.quantity or held_before or flow):
            continue
        terms.setdefault(position.owner_id, []).append(
            PortfolioTerm(
                position.instrument.symbol, holding.quantity, held_before, flow
            )
        )
    return terms
