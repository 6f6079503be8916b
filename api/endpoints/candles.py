"""Candlestick patterns of an instrument's bars (the chart's markers)."""

from __future__ import annotations

from typing import Literal

from ninja import Field, Query, Router, Schema

from api.schemas import Error
from marketdata.candles_api import instrument_candles as candles_view

router = Router(tags=["instruments"])


class CandlesQuery(Schema):
    timeframe: str | None = Field(default=None, description="1m, 5m, 15m, 1h or 1d.")
    start: str | None = Field(default=None, description="ISO 8601 or epoch seconds.")
    end: str | None = Field(default=None, description="ISO 8601 or epoch seconds.")
    limit: str | None = Field(default=None, description="1…5000 (default 1000).")


class CandleOut(Schema):
    t: int = Field(description="Start of the bar where the pattern completes.")
    pattern: str
    label: str
    direction: Literal["bullish", "bearish", "neutral"]
    value: int = Field(description="TA-Lib's value: ±100, ±80 for a partial match.")
    explanation: str


class PatternOut(Schema):
    label: str
    explanation: str


class CandlesOut(Schema):
    symbol: str
    timeframe: str
    bars: int = Field(description="Bars scanned (those the bars endpoint returns).")
    first: int | None
    last: int | None
    candles: list[CandleOut]
    patterns: dict[str, PatternOut]


@router.get(
    "/instruments/{path:symbol}/candles",
    response={200: CandlesOut, 400: Error, 404: Error},
    url_name="instrument_candles",
)
def instrument_candles(request, symbol: str, params: Query[CandlesQuery]):
    """Candlestick patterns (TA-Lib's CDL* rules, equal to TA-Lib) in the
    bars the bars endpoint returns for the same parameters."""
    return candles_view(request, symbol)
