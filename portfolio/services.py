"""Writes to positions and their transactions.

A position's quantity, average cost and realized P/L are the fold of its
transactions (`portfolio.ledger`); every write here changes transactions and
re-folds the position inside one database transaction with the position row
locked, so a refused write (a sell of more than is held, at any date) leaves
nothing behind. Positions created before transactions existed (or by code that
sets the aggregate directly) are turned into one opening buy when first
touched, so the fold starts from what they held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_bulk_created
from marketdata.calendar import market_date
from marketdata.models import Position, Transaction, TransactionKind
from marketdata.selectors import instrument_get, instruments_by_symbol
from portfolio.ledger import ZERO, Entry, Holding, Oversold, fold

PLACES = Decimal("0.00000001")
# Integer digits the columns hold (marketdata.models QUANTITY / PRICE).
QUANTITY_DIGITS, PRICE_DIGITS = 20, 12


def _check_amount(value: Decimal, *, name: str, digits: int) -> str | None:
    if not value.is_finite():
        return f"{name} must be a number."
    if value < 0:
        return f"{name} cannot be negative."
    if value >= 10**digits:
        return f"{name} is too large."
    if value != value.quantize(PLACES):
        return f"{name} has more than 8 decimal places."
    return None


def transaction_check(
    *, kind: str, day: date, quantity: Decimal, price: Decimal, fee: Decimal
) -> dict[str, str]:
    """What is wrong with these fields, by field name (empty when nothing)."""
    errors: dict[str, str] = {}
    if kind not in TransactionKind.values:
        errors["kind"] = "Type must be buy, sell or fee."
    if day > timezone.now().date() + timedelta(days=1):
        errors["date"] = "The date is in the future."
    for name, value, digits in (
        ("quantity", quantity, QUANTITY_DIGITS),
        ("price", price, PRICE_DIGITS),
        ("fee", fee, PRICE_DIGITS),
    ):
        problem = _check_amount(value, name=name.capitalize(), digits=digits)
        if problem:
            errors[name] = problem
    if errors:
        return errors
    if kind == TransactionKind.FEE:
        if quantity or price:
            errors["quantity"] = "A fee has no quantity or price; put it in fee."
        elif not fee:
            errors["fee"] = "A fee needs an amount."
    elif not quantity:
        errors["quantity"] = f"A {kind} needs a quantity above zero."
    return errors


def _entries(transactions: Iterable[Transaction]) -> list[Entry]:
    return [Entry(t.kind, t.date, t.quantity, t.price, t.fee) for t in transactions]


def position_open_legacy(*, position: Position) -> None:
    """An aggregate without transactions becomes its opening buy."""
    if position.quantity > 0 and not position.transactions.exists():
        Transaction.objects.create(
            position=position,
            kind=TransactionKind.BUY,
            date=market_date(position.instrument.asset_class, position.opened_at),
            quantity=position.quantity,
            price=position.average_cost,
            note="Opening balance",
        )


def position_refold(*, position: Position) -> Holding:
    """Fold the position's transactions into its row; ValidationError (and
    nothing saved by the caller's atomic block) when a sell oversells."""
    rows = list(position.transactions.order_by("date", "id"))
    try:
        holding = fold(_entries(rows))
    except Oversold as exc:
        raise ValidationError(
            f"{position.instrument.symbol}: {exc}", code="oversold"
        ) from exc
    position.quantity = holding.quantity
    position.average_cost = holding.average_cost.quantize(PLACES)
    position.realized_pl = holding.realized.quantize(PLACES)
    position.save(update_fields=["quantity", "average_cost", "realized_pl"])
    return holding


def _locked(*, owner, position_id: int) -> Position:
    """The owner's position, locked; DoesNotExist for anyone else's."""
    return (
        Position.objects.select_for_update()
        .select_related("instrument")
        .get(pk=position_id, owner=owner)
    )


def _locked_for_instrument(*, owner, instrument) -> Position:
    position, _ = Position.objects.get_or_create(owner=owner, instrument=instrument)
    position = _locked(owner=owner, position_id=position.pk)
    position_open_legacy(position=position)
    return position


def _checked(kind, day, quantity, price, fee) -> None:
    errors = transaction_check(
        kind=kind, day=day, quantity=quantity, price=price, fee=fee
    )
    if errors:
        raise ValidationError(errors)


def transaction_add(
    *,
    owner,
    symbol: str,
    kind: str,
    day: date,
    quantity: Decimal = ZERO,
    price: Decimal = ZERO,
    fee: Decimal = ZERO,
    note: str = "",
) -> Transaction:
    """Record a buy, sell or fee; opens the position on its first buy."""
    _checked(kind, day, quantity, price, fee)
    instrument = instrument_get(symbol=symbol.strip().upper())
    if instrument is None:
        raise ValidationError({"symbol": f"No instrument {symbol!r}."})
    with transaction.atomic():
        position = _locked_for_instrument(owner=owner, instrument=instrument)
        row = Transaction.objects.create(
            position=position,
            kind=kind,
            date=day,
            quantity=quantity,
            price=price,
            fee=fee,
            note=note,
        )
        position_refold(position=position)
    return row


def _owned_transaction(*, owner, transaction_id: int) -> Transaction:
    row = Transaction.objects.select_related("position").get(
        pk=transaction_id, position__owner=owner
    )
    position = _locked(owner=owner, position_id=row.position_id)
    row.position = position
    return row


def transaction_update(
    *,
    owner,
    transaction_id: int,
    kind: str,
    day: date,
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    note: str,
) -> Transaction:
    """Change a transaction; refused when the position would go below zero
    at any date. DoesNotExist for someone else's."""
    _checked(kind, day, quantity, price, fee)
    with transaction.atomic():
        row = _owned_transaction(owner=owner, transaction_id=transaction_id)
        row.kind, row.date, row.quantity = kind, day, quantity
        row.price, row.fee, row.note = price, fee, note
        row.save()
        position_refold(position=row.position)
    return row


def transaction_delete(*, owner, transaction_id: int) -> Position | None:
    """Remove a transaction; the position goes with its last one (None)."""
    with transaction.atomic():
        row = _owned_transaction(owner=owner, transaction_id=transaction_id)
        position = row.position
        row.delete()
        if not position.transactions.exists():
            position.delete()
            return None
        position_refold(position=position)
    return position


def position_close(
    *,
    owner,
    position_id: int,
    day: date,
    price: Decimal,
    fee: Decimal = ZERO,
    note: str = "",
) -> Transaction:
    """Sell everything held at `price`: the position stays, closed, with its
    realized P/L."""
    with transaction.atomic():
        position = _locked(owner=owner, position_id=position_id)
        position_open_legacy(position=position)
        if position.quantity <= 0:
            raise ValidationError("The position is already closed.")
        _checked(TransactionKind.SELL, day, position.quantity, price, fee)
        row = Transaction.objects.create(
            position=position,
            kind=TransactionKind.SELL,
            date=day,
            quantity=position.quantity,
            price=price,
            fee=fee,
            note=note or "Closed",
        )
        position_refold(position=position)
    return row


def position_delete(*, owner, position_id: int) -> None:
    """Forget a position and all its transactions."""
    with transaction.atomic():
        _locked(owner=owner, position_id=position_id).delete()


# --- import ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    symbol: str
    kind: str
    date: date
    quantity: Decimal
    price: Decimal
    fee: Decimal
    note: str


@dataclass(slots=True)
class ImportResult:
    imported: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    applied: bool = False
    positions: list[str] = field(default_factory=list)


def _oversold_rows(
    *, existing: list[Transaction], new: list[ImportRow]
) -> list[tuple[int, str]]:
    """Rows of `new` (one instrument) that would take the position below zero
    once merged by date with the recorded transactions (the file's rows after
    recorded ones of the same date, in file order). Each culprit is dropped
    and the rest folded again, so later rows are judged without it."""
    bad: list[tuple[int, str]] = []
    rows = list(new)
    while True:
        merged = sorted(
            [((t.date, 0, t.pk), t) for t in existing]
            + [((r.date, 1, r.line), r) for r in rows],
            key=lambda pair: pair[0],
        )
        items = [item for _key, item in merged]
        entries = [Entry(i.kind, i.date, i.quantity, i.price, i.fee) for i in items]
        try:
            fold(entries)
        except Oversold as exc:
            culprit = items[exc.index]
            if isinstance(culprit, ImportRow):
                bad.append((culprit.line, str(exc)))
            else:
                # A recorded sell fails because the file sells earlier: the
                # file's last sell before it is the one to refuse.
                earlier = [
                    i for i in items[: exc.index]
                    if isinstance(i, ImportRow) and i.kind == TransactionKind.SELL
                ]  # fmt: skip
                if not earlier:
                    raise
                culprit = earlier[-1]
                bad.append(
                    (
                        culprit.line,
                        f"It would make the recorded sell of "
                        f"{exc.entry.quantity.normalize():f} on "
                        f"{exc.entry.date.isoformat()} more than is held.",
                    )
                )
            rows.remove(culprit)
            continue
        return bad


def transactions_import(
    *, owner, rows: list[ImportRow], bad: list[tuple[int, str]], skip_bad: bool
) -> ImportResult:
    """Import parsed rows (`bad`: rows the parser refused already). With any
    bad row nothing is written unless `skip_bad`; then the good rows are."""
    result = ImportResult(bad=list(bad))
    instruments = instruments_by_symbol(symbols={r.symbol for r in rows})
    good: list[ImportRow] = []
    for row in rows:
        if row.symbol not in instruments:
            result.bad.append((row.line, f"No instrument {row.symbol!r}."))
        else:
            good.append(row)
    by_symbol: dict[str, list[ImportRow]] = {}
    for row in good:
        by_symbol.setdefault(row.symbol, []).append(row)
    with transaction.atomic():
        positions = {
            symbol: _locked_for_instrument(owner=owner, instrument=instruments[symbol])
            for symbol in sorted(by_symbol)
        }
        for symbol, new in by_symbol.items():
            existing = list(positions[symbol].transactions.order_by("date", "id"))
            oversold = _oversold_rows(existing=existing, new=new)
            result.bad.extend(oversold)
            refused = {line for line, _ in oversold}
            by_symbol[symbol] = [r for r in new if r.line not in refused]
        result.bad.sort()
        if result.bad and not skip_bad:
            transaction.set_rollback(True)
            return result
        for symbol, new in by_symbol.items():
            position = positions[symbol]
            created = Transaction.objects.bulk_create(
                Transaction(
                    position=position,
                    kind=r.kind,
                    date=r.date,
                    quantity=r.quantity,
                    price=r.price,
                    fee=r.fee,
                    note=r.note,
                )
                for r in new
            )
            # bulk_create sends no signals: the audit log is told directly.
            audit_bulk_created(objects=created)
            if position.transactions.exists():
                position_refold(position=position)
            else:
                position.delete()
            result.imported += len(new)
        result.positions = sorted(s for s, new in by_symbol.items() if new)
        result.applied = True
    return result
