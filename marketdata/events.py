"""Normalized market-data events: what every provider adapter produces.

Small frozen `msgspec.Struct`s (a C constructor: the parsers build one per
message; fields in this order, positionally), provider-independent. `symbol` is always the
canonical instrument symbol, `ts` an aware UTC datetime (microseconds kept),
prices and sizes `Decimal` with the precision the provider sent.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

import msgspec


class Trade(msgspec.Struct, frozen=True):
    kind: ClassVar[str] = "trade"
    symbol: str
    ts: datetime
    price: Decimal
    size: Decimal
    provider: str
    trade_id: str | None = None
    exchange: str = ""
    conditions: tuple[str, ...] = ()


class Quote(msgspec.Struct, frozen=True):
    kind: ClassVar[str] = "quote"
    symbol: str
    ts: datetime
    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal
    provider: str
    bid_exchange: str = ""
    ask_exchange: str = ""


class BarEvent(msgspec.Struct, frozen=True):
    """An OHLCV bar; `ts` is the bar start. `updated` marks a correction of a
    bar already sent (Alpaca `u`); `closed` is False for a still-forming bar
    (Binance kline with `x: false`)."""

    kind: ClassVar[str] = "bar"
    symbol: str
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    provider: str
    timeframe: str = "1m"
    vwap: Decimal | None = None
    trade_count: int | None = None
    updated: bool = False
    closed: bool = True


class Status(msgspec.Struct, frozen=True):
    """Trading status of one instrument (halts, resumptions, LULD pauses)."""

    kind: ClassVar[str] = "status"
    symbol: str
    ts: datetime
    provider: str
    halted: bool
    code: str = ""
    message: str = ""
    reason: str = ""


class ControlType(enum.Enum):
    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    AUTH_FAILED = "auth_failed"
    SUBSCRIBED = "subscribed"
    SUBSCRIPTION_ERROR = "subscription_error"
    CONNECTION_LIMIT = "connection_limit"
    PING = "ping"
    SERVER_SHUTDOWN = "server_shutdown"
    ERROR = "error"
    MALFORMED = "malformed"


class Control(msgspec.Struct, frozen=True):
    """A protocol outcome rather than market data. `reply` is a text frame the
    client must send back (e.g. a pong), `symbols` the canonical symbols it
    concerns (the confirmed set for SUBSCRIBED, the rejected ones for
    SUBSCRIPTION_ERROR).

    `reason` says what a SUBSCRIPTION_ERROR means (empty for other types):

    - `PLAN_LIMIT` ("plan_limit"): the request would exceed the plan's or the
      connection's symbol cap. No symbol is wrong; what the provider last
      confirmed is still subscribed (Alpaca 405 "symbol limit exceeded": the
      subscription stays as before the request; Finnhub "Subscribing to too
      many symbols": earlier symbols keep streaming; Binance code 4 "Too many
      subscriptions": the SUBSCRIBE changed nothing). `symbols` is what the
      refused request asked for where the adapter knows it (Binance), else
      empty (Alpaca, Finnhub).
    - `UNKNOWN_SYMBOL` ("unknown_symbol"): the provider named the symbols in
      `symbols` as unknown (Finnhub "Invalid symbol X"). Only these may be
      marked invalid. Alpaca and Binance have no such error: they accept an
      unknown symbol and never deliver it (providers.md 1.4, 5).
    - `INVALID_REQUEST` ("invalid_request"): the request itself was refused
      (Alpaca 410 channel not on this feed, Binance codes 0-3, a Finnhub
      symbol error naming no subscribed symbol); no symbol is at fault.
    """

    kind: ClassVar[str] = "control"
    PLAN_LIMIT: ClassVar[str] = "plan_limit"
    UNKNOWN_SYMBOL: ClassVar[str] = "unknown_symbol"
    INVALID_REQUEST: ClassVar[str] = "invalid_request"
    type: ControlType
    provider: str
    code: int | None = None
    message: str = ""
    symbols: tuple[str, ...] = ()
    reply: str | None = None
    reason: str = ""


Event = Trade | Quote | BarEvent | Status | Control

# SUBSCRIPTION_ERROR reasons, for code that does not hold a Control.
PLAN_LIMIT = Control.PLAN_LIMIT
UNKNOWN_SYMBOL = Control.UNKNOWN_SYMBOL
INVALID_REQUEST = Control.INVALID_REQUEST
