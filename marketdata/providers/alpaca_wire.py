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
bit for bit (tests/marketdata/providers/test_alpaca_typed.py checks it on
random frames), and only the common frames take the shortcut.

`feed_events` is what the stream worker runs: the same, except that each
stretch of consecutive quotes stays one `QuoteRun` of wire values (the
event time as integer microseconds, prices and sizes as sent), grouped by
symbol. Quotes are nine in ten messages of a real feed, and most of them are
superseded before anything shows them: the worker compares their wire values
and converts only the quote that is applied last per symbol
(`streaming.quote_runs`). `QuoteRun.expand()` gives the `Quote`s
`typed_events` would have given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

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
_from_bytes = int.from_bytes
_LOW34 = (1 << 34) - 1
# What the quote path keeps as wire values: numbers the conversions accept
# (ints, finite floats), so nothing it skips converting could have failed.
_MAX = 1.7976931348623157e308
Exact = int | Annotated[float, msgspec.Meta(ge=-_MAX, le=_MAX)]


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


class _FeedQuote(msgspec.Struct, tag_field="T", tag="q", gc=False):
    """A quote as `feed_events` takes it: the exact types only (a frame with
    anything else goes through `typed_events`)."""

    S: Annotated[str, msgspec.Meta(min_length=1)]
    t: Ext
    bp: Exact
    bs: Exact
    ap: Exact
    as_: Exact = msgspec.field(name="as")
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
_decode_feed = msgspec.msgpack.Decoder(
    list[_Trade | _FeedQuote | _MinuteBar | _UpdatedBar | _DailyBar]
).decode
_BARS = {_MinuteBar: ("1m", False), _UpdatedBar: ("1m", True), _DailyBar: ("1d", True)}
_QUOTES = (_Quote, _FeedQuote)


def micros(value: Ext) -> int:
    """A msgpack timestamp (extension -1) -> integer microseconds since the
    epoch, sub-microsecond digits truncated (as msgpack's own
    `Timestamp.to_datetime`)."""
    if value.code != -1:
        raise NotTyped
    data = value.data
    size = len(data)
    if size == 8:  # timestamp 64: 30-bit nanoseconds, 34-bit seconds
        packed = _from_bytes(data, "big")
        seconds, nanos = packed & _LOW34, packed >> 34
    elif size == 4:  # timestamp 32: seconds only
        seconds, nanos = _from_bytes(data, "big"), 0
    elif size == 12:  # timestamp 96: 32-bit nanoseconds, signed 64-bit seconds
        seconds = _from_bytes(data[4:], "big", signed=True)
        nanos = _from_bytes(data[:4], "big")
    else:
        raise NotTyped
    if nanos > 999_999_999:  # not a timestamp
        raise NotTyped
    return seconds * 1_000_000 + nanos // 1000


def timestamp(value: Ext | str) -> datetime:
    """A msgpack timestamp or RFC-3339 text -> aware UTC datetime."""
    if type(value) is str:
        return parse_rfc3339(value)
    return from_epoch_us(micros(value))


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
        if kind in _QUOTES:
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


class QuoteRun:
    """Consecutive quotes of one frame as the wire sent them.

    `groups` maps each canonical symbol to its quotes in wire order, each as
    `(position in the frame, event time in integer microseconds, message)`;
    a message has `bp`, `bs`, `ap` and `as_` (ints or finite floats), `bx`
    and `ax`. `first_ts` and `last_ts` are the event times of the run's
    first and last quote.
    """

    kind = "quotes"
    __slots__ = ("provider", "canonical", "messages", "groups", "first_ts", "last_ts")

    def __init__(self, provider, canonical, messages, groups, first_us, last_us):
        self.provider = provider
        self.canonical = canonical
        self.messages = messages
        self.groups = groups
        self.first_ts = from_epoch_us(first_us)
        self.last_ts = from_epoch_us(last_us)

    @property
    def count(self) -> int:
        return len(self.messages)

    def expand(self) -> list[Quote]:
        """The normalized `Quote`s, in wire order."""
        return _events(self.messages, self.provider, self.canonical)


def feed_events(
    frame: bytes, *, provider: str, to_canonical: dict[str, str]
) -> list[Trade | Quote | BarEvent | QuoteRun]:
    """`typed_events`, with each stretch of consecutive quotes one
    `QuoteRun`; `NotTyped` for a frame the dict path must parse."""
    try:
        messages = _decode_feed(frame)
    except (msgspec.DecodeError, msgspec.ValidationError):
        messages = None  # a value outside the quote path's types
    if messages is not None:
        try:
            return _feed(messages, provider, to_canonical)
        except Exception:  # an odd value: the typed path, then the dict path
            pass
    return typed_events(frame, provider=provider, to_canonical=to_canonical)


def _feed(messages: list, provider: str, canonical: dict) -> list:
    out: list = []
    start = 0  # of the stretch of messages not yet handed out
    groups: dict | None = None
    first = us = 0
    for i, m in enumerate(messages):
        if type(m) is not _FeedQuote:
            if groups is not None:
                out.append(
                    _run(messages[start:i], groups, provider, canonical, first, us)
                )
                groups, start = None, i
            continue
        t = m.t
        data = t.data
        if t.code == -1 and len(data) == 8:  # timestamp 64, as `micros`
            packed = _from_bytes(data, "big")
            nanos = packed >> 34
            if nanos > 999_999_999:
                raise NotTyped
            us = (packed & _LOW34) * 1_000_000 + nanos // 1000
        else:
            us = micros(t)
            from_epoch_us(us)  # raises for a time no datetime holds
        if groups is None:
            if i > start:
                out += _events(messages[start:i], provider, canonical)
            groups, start, first = {}, i, us
        group = groups.get(m.S)
        if group is None:
            groups[m.S] = group = []
        group.append((i, us, m))
    if groups is not None:
        out.append(_run(messages[start:], groups, provider, canonical, first, us))
    elif start < len(messages):
        out += _events(messages[start:], provider, canonical)
    return out


def _run(messages, groups, provider, canonical, first_us, last_us) -> QuoteRun:
    by_symbol = {canonical.get(s, s): group for s, group in groups.items()}
    if len(by_symbol) != len(groups):  # two wire symbols, one instrument
        raise NotTyped
    return QuoteRun(provider, canonical, messages, by_symbol, first_us, last_us)
