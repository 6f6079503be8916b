"""Reads of API tokens."""

from __future__ import annotations

from django.db.models import QuerySet

from api.models import ApiToken


def api_tokens_for_user(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def instruments_listed(*, limit: int) -> list:
    """Active instruments by symbol (the API's unfiltered list). Kept here,
    not in marketdata.selectors, only to keep this branch's merge small."""
    from marketdata.models import Instrument

    return list(Instrument.objects.filter(active=True).order_by("symbol")[:limit])
