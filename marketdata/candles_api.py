"""JSON endpoint for the chart's candlestick-pattern markers.

GET /api/instruments/<symbol>/candles?timeframe=1h&start=…&end=…&limit=…

Parameters, defaults and errors are the bars endpoint's (`marketdata.api`):
the same bars are scanned, `WARMUP` older ones read first so patterns are
judged from the first returned bar on (TA-Lib compares each candle with the
10 before it). Response::

    {"symbol": "AAPL", "timeframe": "1h", "bars": 500,
     "first": 1717372800, "last": 1719187200,
     "candles": [{"t": 1717480800, "pattern": "hammer", "label": "Hammer",
                  "direction": "bullish", "value": 100,
                  "explanation": "Small body on a long lower shadow, ..."}],
     "patterns": {"hammer": {"label": "Hammer", "explanation": "..."}, ...}}

`candles` lists each (bar, pattern) that fires, oldest first; `value` is
TA-Lib's (±100, ±80 for partial engulfing/harami); `first`/`last` are the
`t` of the scanned bars (null when there are none). 400 for bad parameters,
401 when not logged in, 404 for an unknown symbol.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from marketdata.api import _json, bars_window_read
from marketdata.candles import CANDLE_PATTERNS, EXPLANATIONS, WARMUP, candle_events

PATTERNS = {
    name: {"label": label, "explanation": EXPLANATIONS[name]}
    for name, label in CANDLE_PATTERNS.items()
}


@require_GET
def instrument_candles(request: HttpRequest, symbol: str) -> HttpResponse:
    window = bars_window_read(request, symbol, allowed=set(), warmup=WARMUP)
    if isinstance(window, HttpResponse):
        return window
    rows, older = window.rows, window.older
    return _json(
        {
            "symbol": window.instrument.symbol,
            "timeframe": window.timeframe,
            "bars": len(rows),
            "first": int(rows[0][0].timestamp()) if rows else None,
            "last": int(rows[-1][0].timestamp()) if rows else None,
            "candles": candle_events(rows=[*older, *rows], skip=len(older)),
            "patterns": PATTERNS,
        }
    )
