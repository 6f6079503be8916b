"""Positions and the transactions under them: the portfolio page's services
(`portfolio.services`) and figures (`portfolio.selectors.portfolio_value`),
so a position changed here folds, values and refuses oversells exactly as
one changed on the page. Someone else's position is a 404 on every path."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404
from ninja import Router, Status

from api.schemas import (
    CloseIn,
    Error,
    PositionIn,
    PositionOut,
    TransactionIn,
    TransactionOut,
)
from marketdata.calendar import market_date
from marketdata.models import Position, TransactionKind
from marketdata.selectors import instrument_get
from portfolio import services
from portfolio.selectors import (
    portfolio_value,
    position_get_for_owner,
    positions_for_owner,
)
from streaming.snapshots import snapshots_get_safe

router = Router(tags=["positions"])


def oversold_named(exc: ValidationError, *, name: str = "quantity") -> ValidationError:
    """The services refuse an oversell without naming a field (the fold sees
    the whole position); a request's client learns which value to change."""
    if hasattr(exc, "error_dict"):
        return exc
    return ValidationError({name: exc.messages})


def _valued(owner) -> dict[int, Position]:
    """The caller's positions by id, each carrying its valuation at the last
    price (null figures when there is none, or Redis is out of reach)."""
    positions = list(positions_for_owner(owner=owner))
    snapshots = (
        snapshots_get_safe(symbols={p.instrument.symbol for p in positions}) or {}
    )
    valuation = portfolio_value(positions=positions, snapshots=snapshots)
    found = {}
    for row in valuation.open + valuation.closed:
        position = row.position
        position.last, position.value = row.last, row.value
        position.unrealized_pl, position.day_pl = row.unrealized, row.day
        position.total_pl, position.return_pct = row.total, row.return_pct
        position.weight = row.weight
        found[position.pk] = position
    return found


def _owned(request, position_id: int) -> Position:
    position = position_get_for_owner(owner=request.auth, position_id=position_id)
    if position is None:
        raise Http404("No such position.")
    return position


def _valued_one(request, position_id: int) -> Position:
    position = _valued(request.auth).get(position_id)
    if position is None:
        raise Http404("No such position.")
    return position


@router.get("/positions", response=list[PositionOut])
def positions_list(request):
    """Open and closed positions, by symbol."""
    return list(_valued(request.auth).values())


@router.post("/positions", response={201: PositionOut, 400: Error})
def positions_open(request, payload: PositionIn):
    """Open a position with its first buy. A position already recorded for
    the symbol (open or closed) takes further buys at its transactions."""
    symbol = payload.symbol.strip().upper()
    instrument = instrument_get(symbol=symbol)
    if instrument is None:
        raise ValidationError({"symbol": f"No instrument {payload.symbol!r}."})
    existing = positions_for_owner(owner=request.auth).filter(instrument=instrument)
    if (position := existing.first()) is not None:
        raise ValidationError(
            {
                "symbol": f"A position in {symbol} exists already: add to it at "
                f"/api/positions/{position.pk}/transactions."
            }
        )
    row = services.transaction_add(
        owner=request.auth,
        symbol=symbol,
        kind=TransactionKind.BUY,
        day=payload.date or market_date(instrument.asset_class),
        quantity=payload.quantity,
        price=payload.price,
        fee=payload.fee,
        note=payload.note,
    )
    return Status(201, _valued_one(request, row.position_id))


@router.get("/positions/{int:position_id}", response={200: PositionOut, 404: Error})
def positions_detail(request, position_id: int):
    return _valued_one(request, position_id)


@router.post(
    "/positions/{int:position_id}/close",
    response={200: PositionOut, 400: Error, 404: Error},
)
def positions_close(request, position_id: int, payload: CloseIn):
    """Sell everything held at `price`; the position stays, closed, with its
    realized P/L."""
    position = _owned(request, position_id)
    try:
        services.position_close(
            owner=request.auth,
            position_id=position_id,
            day=payload.date or market_date(position.instrument.asset_class),
            price=payload.price,
            fee=payload.fee,
            note=payload.note,
        )
    except ObjectDoesNotExist:
        raise Http404("No such position.") from None
    return _valued_one(request, position_id)


@router.delete("/positions/{int:position_id}", response={204: None, 404: Error})
def positions_delete(request, position_id: int):
    """Forget the position and all its transactions."""
    _owned(request, position_id)
    try:
        services.position_delete(owner=request.auth, position_id=position_id)
    except ObjectDoesNotExist:
        raise Http404("No such position.") from None
    return Status(204, None)


@router.get(
    "/positions/{int:position_id}/transactions",
    response={200: list[TransactionOut], 404: Error},
)
def position_transactions_list(request, position_id: int):
    """In the order they apply (date, then as recorded)."""
    position = _owned(request, position_id)
    return list(
        position.transactions.select_related("position__instrument").order_by(
            "date", "id"
        )
    )


@router.post(
    "/positions/{int:position_id}/transactions",
    response={201: TransactionOut, 400: Error, 404: Error},
)
def position_transactions_create(request, position_id: int, payload: TransactionIn):
    """Record a buy, sell or fee; a sell of more than is held at its date is
    refused (400 naming `quantity`)."""
    position = _owned(request, position_id)
    try:
        row = services.transaction_add(
            owner=request.auth,
            symbol=position.instrument.symbol,
            kind=payload.kind.value,
            day=payload.date or market_date(position.instrument.asset_class),
            quantity=payload.quantity,
            price=payload.price,
            fee=payload.fee,
            note=payload.note,
        )
    except ValidationError as exc:
        raise oversold_named(exc) from None
    return Status(201, row)
