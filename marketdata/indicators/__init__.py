"""Technical indicators: vectorized over arrays (`vectorized`), incremental
one bar at a time (`incremental`), and the chart's indicator specs (`specs`).

The incremental classes return what the vectorized functions return at the
same index; the alert engine and the live chart use them. One package past
~400 lines: each module stands alone, import from the package.
"""

from __future__ import annotations

from marketdata.indicators.incremental import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    Bollinger,
    Stochastic,
    WilliamsR,
)
from marketdata.indicators.specs import (
    SPEC_KINDS,
    indicator_payload,
    indicator_series,
    indicators_warmup,
    parse_indicator_spec,
)
from marketdata.indicators.vectorized import (
    atr,
    bollinger,
    ema,
    macd,
    rsi,
    sma,
    stochastic,
    williams_r,
)

__all__ = [
    "ATR",
    "EMA",
    "MACD",
    "RSI",
    "SMA",
    "SPEC_KINDS",
    "Bollinger",
    "Stochastic",
    "WilliamsR",
    "atr",
    "bollinger",
    "ema",
    "indicator_payload",
    "indicator_series",
    "indicators_warmup",
    "macd",
    "parse_indicator_spec",
    "rsi",
    "sma",
    "stochastic",
    "williams_r",
]
