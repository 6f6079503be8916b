"""Watchlists and their items: the same services as the dashboard's editing,
so every check (names, unknown symbols, someone else's list) is shared."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from ninja import Router, Status

from api.schemas import Error, ItemIn, WatchlistIn, WatchlistOut, WatchlistPatch
from marketdata.models import Watchlist
from marketdata.selectors import (
    instruments_by_symbol,
    watchlist_get_for_owner,
    watchlists_for_user,
)
from marketdata.services import (
    watchlist_create_checked,
    watchlist_delete,
    watchlist_item_add,
    watchlist_item_remove,
    watchlist_item_reorder,
    watchlist_items_add,
    watchlist_rename,
)

router = Router(tags=["watchlists"])


def _field_error(name: str, exc: ValidationError) -> ValidationError:
    return ValidationError({name: exc.messages})


def _owned(request, watchlist_id: int) -> Watchlist:
    watchlist = watchlist_get_for_owner(owner=request.auth, watchlist_id=watchlist_id)
    if watchlist is None:
        raise Http404("No such watchlist.")
    return watchlists_for_user(user=request.auth).get(pk=watchlist.pk)


@router.get("/watchlists", response=list[WatchlistOut])
def watchlists_list(request):
    return list(watchlists_for_user(user=request.auth))


@router.post("/watchlists", response={201: WatchlistOut, 400: Error})
def watchlists_create(request, payload: WatchlistIn):
    symbols = [s.strip().upper() for s in payload.symbols]
    known = instruments_by_symbol(symbols=symbols)
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise ValidationError(
            {"symbols": f"Unknown instrument(s): {', '.join(unknown)}."}
        )
    try:
        watchlist = watchlist_create_checked(owner=request.auth, name=payload.name)
    except ValidationError as exc:
        raise _field_error("name", exc) from None
    watchlist_items_add(watchlist=watchlist, symbols=symbols)
    return Status(201, _owned(request, watchlist.pk))


@router.get("/watchlists/{int:watchlist_id}", response={200: WatchlistOut, 404: Error})
def watchlists_detail(request, watchlist_id: int):
    return _owned(request, watchlist_id)


@router.patch(
    "/watchlists/{int:watchlist_id}",
    response={200: WatchlistOut, 400: Error, 404: Error},
)
def watchlists_update(request, watchlist_id: int, payload: WatchlistPatch):
    """Rename, and/or order the items (`order`: symbols; others follow)."""
    _owned(request, watchlist_id)
    if payload.name is not None:
        try:
            watchlist_rename(
                owner=request.auth, watchlist_id=watchlist_id, name=payload.name
            )
        except ValidationError as exc:
            raise _field_error("name", exc) from None
    if payload.order is not None:
        watchlist_item_reorder(
            owner=request.auth,
            watchlist_id=watchlist_id,
            symbols=[s.strip().upper() for s in payload.order],
        )
    return _owned(request, watchlist_id)


@router.delete("/watchlists/{int:watchlist_id}", response={204: None, 404: Error})
def watchlists_delete(request, watchlist_id: int):
    _owned(request, watchlist_id)
    watchlist_delete(owner=request.auth, watchlist_id=watchlist_id)
    return Status(204, None)


@router.post(
    "/watchlists/{int:watchlist_id}/items",
    response={201: WatchlistOut, 400: Error, 404: Error},
)
def watchlist_items_create(request, watchlist_id: int, payload: ItemIn):
    """Append an instrument to the list."""
    _owned(request, watchlist_id)
    try:
        watchlist_item_add(
            owner=request.auth, watchlist_id=watchlist_id, symbol=payload.symbol
        )
    except ValidationError as exc:
        raise _field_error("symbol", exc) from None
    return Status(201, _owned(request, watchlist_id))


@router.delete(
    "/watchlists/{int:watchlist_id}/items/{path:symbol}",
    response={204: None, 404: Error},
)
def watchlist_items_delete(request, watchlist_id: int, symbol: str):
    _owned(request, watchlist_id)
    removed = watchlist_item_remove(
        owner=request.auth, watchlist_id=watchlist_id, symbol=symbol.strip().upper()
    )
    if not removed:
        raise Http404(f"{symbol.upper()} is not in this watchlist.")
    return Status(204, None)
