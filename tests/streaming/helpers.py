"""Events for the stream worker's tests, on one clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from marketdata.events import Quote, Trade

# Ten seconds into a minute that is over: trades a second apart never straddle
# a minute boundary.
NOW = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=10, microsecond=0)


def trade(symbol, seconds, price, size="1", trade_id=None) -> Trade:
    return Trade(
        symbol=symbol,
        ts=NOW + timedelta(seconds=seconds),
        price=D(price),
        size=D(size),
        provider="simulator",
        trade_id=trade_id,
    )


def quote(symbol, seconds, bid, ask) -> Quote:
    return Quote(
        symbol=symbol,
        ts=NOW + timedelta(seconds=seconds),
        bid_price=D(bid),
        bid_size=D("1"),
        ask_price=D(ask),
        ask_size=D("2"),
        provider="simulator",
    )
