"""Positions (read). Writes and transactions arrive with the portfolio work:
add their routes here, calling its services (see api/README note in
README.md "Token API")."""

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
