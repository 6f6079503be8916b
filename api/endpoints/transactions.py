"""One transaction (read, change, delete) and CSV import, through the
portfolio services: a change that would take its position below zero at any
date is refused with nothing saved; deleting a position's last transaction
deletes the position."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404
from ninja import Router, Status

from api.endpoints.positions import oversold_named
from api.schemas import Error, ImportIn, ImportOut, TransactionOut, TransactionPatch
from marketdata.models import Transaction
from portfolio import services
from portfolio.csv_io import transactions_parse
from portfolio.selectors import transaction_get_for_owner

router = Router(tags=["positions"])

MAX_IMPORT_CHARS = 5 * 1024 * 1024  # the portfolio page's upload limit


def _owned(request, transaction_id: int) -> Transaction:
    row = transaction_get_for_owner(owner=request.auth, transaction_id=transaction_id)
    if row is None:
        raise Http404("No such transaction.")
    return row


@router.get(
    "/transactions/{int:transaction_id}", response={200: TransactionOut, 404: Error}
)
def transactions_detail(request, transaction_id: int):
    return _owned(request, transaction_id)


@router.patch(
    "/transactions/{int:transaction_id}",
    response={200: TransactionOut, 400: Error, 404: Error},
)
def transactions_update(request, transaction_id: int, payload: TransactionPatch):
    """Change any of kind, date, quantity, price, fee, note."""
    row = _owned(request, transaction_id)
    sent = payload.dict(exclude_unset=True)
    # An explicit null keeps the value too: no field of a transaction is empty.
    values = {
        name: getattr(row, name) if sent.get(name) is None else sent[name]
        for name in ("kind", "date", "quantity", "price", "fee", "note")
    }
    kind = values["kind"]
    try:
        services.transaction_update(
            owner=request.auth,
            transaction_id=transaction_id,
            kind=getattr(kind, "value", kind),
            day=values["date"],
            quantity=values["quantity"],
            price=values["price"],
            fee=values["fee"],
            note=values["note"],
        )
    except ObjectDoesNotExist:
        raise Http404("No such transaction.") from None
    except ValidationError as exc:
        raise oversold_named(exc) from None
    return _owned(request, transaction_id)


@router.delete(
    "/transactions/{int:transaction_id}",
    response={204: None, 400: Error, 404: Error},
)
def transactions_delete(request, transaction_id: int):
    """Deleting a buy that later sells depend on is refused (400); the
    position goes with its last transaction."""
    _owned(request, transaction_id)
    try:
        services.transaction_delete(owner=request.auth, transaction_id=transaction_id)
    except ObjectDoesNotExist:
        raise Http404("No such transaction.") from None
    return Status(204, None)


@router.post("/transactions/import", response={201: ImportOut, 400: Error})
def transactions_import(request, payload: ImportIn):
    """Import a CSV of transactions (the portfolio page's format). Any bad
    line refuses the whole file (400 listing each by line) unless
    `skip_bad`; then the good lines are imported and the bad ones listed."""
    if len(payload.csv) > MAX_IMPORT_CHARS:
        raise ValidationError({"csv": "The file is larger than 5 MB."})
    rows, bad = transactions_parse(payload.csv.encode())
    result = services.transactions_import(
        owner=request.auth, rows=rows, bad=bad, skip_bad=payload.skip_bad
    )
    lines = [f"line {line}: {why}" for line, why in result.bad]
    if not result.applied:
        raise ValidationError({"csv": lines or ["Nothing to import."]})
    return Status(
        201,
        {
            "imported": result.imported,
            "positions": result.positions,
            "skipped": [{"line": n, "error": why} for n, why in result.bad],
        },
    )
