"""Instruments, search, and bars with indicators."""

from __future__ import annotations

from django.http import Http404
from ninja import Field as F
from ninja import Query, Router, Schema

from api.schemas import BarsOut, Error, InstrumentOut, PatternsOut
from api.selectors import instruments_listed
from marketdata.api import instrument_bars as bars_view
from marketdata.api import instrument_patterns as patterns_view
from marketdata.selectors import instrument_get, instruments_search

router = Router(tags=["instruments"])


class InstrumentFilter(Schema):
    q: str = F(default="", description="Search symbols (prefix) and names.")
    limit: int = F(default=100, ge=1, le=1000)


class BarsQuery(Schema):
    timeframe: str | None = F(default=None, description="1m, 5m, 15m, 1h or 1d.")
    start: str | None = F(default=None, description="ISO 8601 or epoch seconds.")
    end: str | None = F(default=None, description="ISO 8601 or epoch seconds.")
    limit: str | None = F(default=None, description="1…5000 (default 1000).")
    indicators: str | None = F(
        default=None, description="e.g. sma:20,ema:50,bb:20:2,rsi:14,macd:12:26:9"
    )


@router.get("/instruments", response=list[InstrumentOut])
def instruments_list(request, filters: Query[InstrumentFilter]):
    """Active instruments by symbol, or the search results for `q`."""
    if filters.q.strip():
        return instruments_search(query=filters.q, limit=filters.limit)
    return instruments_listed(limit=filters.limit)


# Registered before the instrument itself: `{path:symbol}` also matches
# "BTC/USD/bars".
@router.get(
    "/instruments/{path:symbol}/bars",
    response={200: BarsOut, 400: Error, 404: Error},
    url_name="instrument_bars",
)
def instrument_bars(request, symbol: str, params: Query[BarsQuery]):
    """Bars of one instrument, oldest first, with optional indicators.

    The chart's own endpoint: parameters are checked by it (unknown ones
    are a 400) and its response is returned as is."""
    return bars_view(request, symbol)


@router.get(
    "/instruments/{path:symbol}/bars/", include_in_schema=False, url_name="bars_slash"
)
def instrument_bars_slash(request, symbol: str):
    return bars_view(request, symbol)


class PatternsQuery(Schema):
    timeframe: str | None = F(default=None, description="1m, 5m, 15m, 1h or 1d.")
    start: str | None = F(default=None, description="ISO 8601 or epoch seconds.")
    end: str | None = F(default=None, description="ISO 8601 or epoch seconds.")
    limit: str | None = F(default=None, description="Bars looked at: 1…5000 (1000).")
    kinds: str | None = F(
        default=None, description="Comma-separated pattern kinds, e.g. double_top."
    )


@router.get(
    "/instruments/{path:symbol}/patterns",
    response={200: PatternsOut, 400: Error, 404: Error},
    url_name="instrument_patterns",
)
def instrument_patterns(request, symbol: str, params: Query[PatternsQuery]):
    """Chart patterns confirmed on the bars of one instrument and timeframe
    (the same window as the bars endpoint), oldest first, each with its
    points, the lines to draw and a one-sentence explanation."""
    return patterns_view(request, symbol)


@router.get("/instruments/{path:symbol}", response={200: InstrumentOut, 404: Error})
def instrument_detail(request, symbol: str):
    instrument = instrument_get(symbol=symbol.strip().upper())
    if instrument is None:
        raise Http404(f"Unknown instrument {symbol!r}.")
    return instrument
