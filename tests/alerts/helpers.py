from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from marketdata.events import BarEvent, Trade

T0 = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)


def trade(symbol: str, price, seconds: float = 0, size=100) -> Trade:
    return Trade(
        symbol=symbol,
        ts=T0 + timedelta(seconds=seconds),
        price=Decimal(str(price)),
        size=Decimal(str(size)),
        provider="simulator",
    )


def bar(symbol: str, minute: int, close, volume=1000, closed: bool = True) -> BarEvent:
    close = Decimal(str(close))
    return BarEvent(
        symbol=symbol,
        ts=T0 + timedelta(minutes=minute),
        open=close,
        high=close,
        low=close,
        close=close,
        volume=Decimal(str(volume)),
        provider="simulator",
        closed=closed,
    )


def feed(engine, events, snapshot=None) -> list:
    fired = []
    for event in events:
        fired.extend(engine.on_event(event, snapshot))
    return fired
