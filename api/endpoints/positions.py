"""Positions (read).

Writes and transactions come with the portfolio work (`marketdata`
Transaction and its services): their routes belong in this module (or a
`transactions.py` beside it, added to `api.app.ROUTERS`), with schemas in
`api.schemas`, each calling one portfolio service and raising its
ValidationError (400 naming the field) or Http404 for another user's rows.
`tests/api/test_openapi.py` fails until each new operation has a call in
`calls()`.
"""

from __future__ import annotations

from django.http import Http404
from ninja import Router

from api.schemas import Error, PositionOut
from marketdata.selectors import positions_for_user

router = Router(tags=["positions"])


@router.get("/positions", response=list[PositionOut])
def positions_list(request):
    return list(positions_for_user(user=request.auth))


@router.get("/positions/{int:position_id}", response={200: PositionOut, 404: Error})
def positions_detail(request, position_id: int):
    position = positions_for_user(user=request.auth).filter(pk=position_id).first()
    if position is None:
        raise Http404("No such position.")
    return position
