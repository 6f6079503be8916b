"""Alpaca's msgpack stream frames decoded straight into typed structs.

The hot path of `AlpacaProvider.parse_frame` for binary frames: msgspec
decodes a frame of trades, quotes and bars (a tagged union on `T`) into
compact structs without building a dict per message, and `typed_events`
turns them into the normalized events with the same conversions as the
dict path (`price_to_decimal`, `to_decimal`, the msgpack timestamp truncated
to the microsecond, never rounded).

Anything else — another message type (statuses, controls, corrections), a
field of an unexpected type, an empty symbol, a value the conversions refuse
— raises `NotTyped`, and the caller parses the whole frame with the dict
path, which decides what is malformed. So the output is the dict path's,
bit for bit (tests/marketdata/providers/test_fast_paths.py checks it on
random frames), and only the common frames take the shortcut.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from msgspec.msgpack import Ext

from marketdata.events import BarEvent, Quote, Trade
from marketdata.providers.timeparse import (
    from_epoch_us,
    parse_rfc3339,
    price_to_decimal,
    to_decimal,
)

Number = int | float | str
_fromtimestamp = datetime.fromtimestamp
_from_bytes = int.from_bytes
_LOW34 = (1 << 34) - 1
_EXACT_SECONDS = 2**32  # see timeparse: float seconds are exact below it


class NotTyped(Exception):
    """The frame is not one the typed path takes: use the dict path."""


class _Trade(msgspec.Struct, tag_field="T", tag="t"):
    S: str
    t: Ext | str
    p: Number
    s: Number
    i: int | str | None = None
    x: str = ""
    c: list[str] | None = None


class _Quote(msgspec.Struct, tag_field="T", tag="q"):
    S: str
    t: Ext | str
    bp: Number
    bs: Number
    ap: Number
    as_: Number = msgspec.field(name="as")
    bx: str = ""
    ax: str = ""


class _Bar(msgspec.Struct, tag_field="T"):
    S: str
    t: Ext | str
    o: Number
    h: Number
    l: Number  # noqa: E741 - Alpaca's field name
    c: Number
    v: Number
    vw: Number | None = None
    n: int | None = None


class _MinuteBar(_Bar, tag="b"):
    pass


class _UpdatedBar(_Bar, tag="u"):
    pass


class _DailyBar(_Bar, tag="d"):
    pass


_decode = msgspec.msgpack.Decoder(
    list[_Trade | _Quote | _MinuteBar | _UpdatedBar | _DailyBar]
).decode
_BARS = {_MinuteBar: ("1m", False), _UpdatedBar: ("1m", True), _DailyBar: ("1d", True)}


def timestamp(value: Ext | str) -> datetime:
    """A msgpack timestamp (extension -1) or RFC-3339 text -> aware UTC
    datetime, sub-microsecond digits truncated (as msgpack's own
    `Timestamp.to_datetime`)."""
    if type(value) is str:
        return parse_rfc3339(value)
    if value.code != -1:
        raise NotTyped
    data = value.data
    size = len(data)
    if size == 8:  # timestamp 64: 30-bit nanoseconds, 34-bit seconds
        packed = _from_bytes(data, "big")
        seconds, micros = packed & _LOW34, (packed >> 34) // 1000
    elif size == 4:  # timestamp 32: seconds only
        seconds, micros = _from_bytes(data, "big"), 0
    elif size == 12:  # timestamp 96: 32-bit nanoseconds, signed 64-bit seconds
        seconds = _from_bytes(data[4:], "big", signed=True)
        micros = _from_bytes(data[:4], "big") // 1000
    else:
        raise NotTyped
    if micros >= 1_000_000:  # nanoseconds past 999,999,999: not a timestamp
        raise NotTyped
    if 0 <= seconds < _EXACT_SECONDS:
        return _fromtimestamp((seconds * 1_000_000 + micros) / 1_000_000, UTC)
    return from_epoch_us(seconds * 1_000_000 + micros)


def typed_events(
    frame: bytes, *, provider: str, to_canonical: dict[str, str]
) -> list[Trade | Quote | BarEvent]:
    """The normalized events of a msgpack frame, or `NotTyped`."""
    try:
        messages = _decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise NotTyped from None
    try:
        return _events(messages, provider, to_canonical)
    except NotTyped:
        raise
    except Exception:  # the dict path reports it message by message
        raise NotTyped from None


def _events(messages: list, provider: str, canonical: dict) -> list:
    events: list = []
    append = events.append
    get = canonical.get
    price: Callable = price_to_decimal
    for m in messages:
        kind = type(m)
        symbol = m.S
        if not symbol:
            raise NotTyped
        if kind is _Quote:
            append(
                Quote(
                    get(symbol, symbol),
                    timestamp(m.t),
                    price(m.bp),
                    to_decimal(m.bs),
                    price(m.ap),
                    to_decimal(m.as_),
                    provider,
                    m.bx,
                    m.ax,
                )
            )
        elif kind is _Trade:
            trade_id = m.i
            conditions = m.c
            append(
                Trade(
                    get(symbol, symbol),
                    timestamp(m.t),
                    price(m.p),
                    to_decimal(m.s),
                    provider,
                    None if trade_id is None else str(trade_id),
                    m.x,
                    tuple(conditions) if conditions else (),
                )
            )
        else:
            timeframe, updated = _BARS[kind]
            vwap = m.vw
            append(
                BarEvent(
                    get(symbol, symbol),
                    timestamp(m.t),
                    price(m.o),
                    price(m.h),
                    price(m.l),
                    price(m.c),
                    to_decimal(m.v),
                    provider,
                    timeframe,
                    None if vwap is None else to_decimal(vwap),
                    m.n,
                    updated,
                )
            )
    return events
