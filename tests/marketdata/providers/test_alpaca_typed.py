"""Property tests: Alpaca's typed msgpack path (`alpaca_wire`) gives exactly
what the dict path gives, for well-formed frames and for frames with odd
values (the typed path must then hand the frame to the dict path)."""

from __future__ import annotations

import os
from decimal import Decimal

import msgpack
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from marketdata.providers.alpaca import AlpacaProvider
from marketdata.providers.alpaca_wire import NotTyped, typed_events
from tests.marketdata.providers.conftest import FIXTURES

SETTINGS = settings(
    max_examples=int(os.environ.get("TAPELINE_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def provider() -> AlpacaProvider:
    return AlpacaProvider(
        symbols={"BTC/USD": "BTC/USD", "BRK.B": "BRK.B", "FB": "META"},
        key_id="AKTESTKEY",
        secret="s3cr3t-value",
    )


def same(a: list, b: list) -> bool:
    """Equal events, and every Decimal with the same digits and exponent."""
    if a != b:
        return False
    for x, y in zip(a, b, strict=True):
        for name in getattr(x, "__slots__", ()):
            u, v = getattr(x, name), getattr(y, name)
            if isinstance(u, Decimal) and u.as_tuple() != v.as_tuple():
                return False
            if name == "ts" and u.tzinfo is not v.tzinfo:
                return False
    return True


prices = (
    st.floats(min_value=0.0001, max_value=1e6, allow_nan=False).map(
        lambda f: round(f, 4)
    )
    | st.integers(0, 10**6)
    | st.decimals("0.0001", "99999", places=4).map(str)
)
sizes = st.integers(0, 10**7) | st.floats(0, 1e4, allow_nan=False)
timestamps = st.builds(
    msgpack.Timestamp,
    st.integers(0, 2**34 - 1) | st.integers(-(2**40), 2**40),
    st.integers(0, 999_999_999),
) | st.sampled_from(["2024-03-12T14:30:05.123456789Z", "2024-03-12T14:30:05Z"])
symbols = st.sampled_from(["AAPL", "BRK.B", "META", "BTC/USD", "X"])
strings = st.sampled_from(["", "V", "Q", "@"])
# values a feed should never send; the dict path decides what they mean
odd = st.sampled_from(
    [None, True, "", "abc", float("nan"), float("inf"), 2**64 - 1, []]
)


def maybe(strategy):
    return strategy | odd


trade = st.fixed_dictionaries(
    {
        "T": st.just("t"),
        "S": symbols,
        "t": timestamps,
        "p": prices,
        "s": sizes,
    },
    optional={
        "i": st.integers(0, 2**64 - 1) | st.sampled_from(["17", 1.5, True]),
        "x": strings,
        "c": st.lists(strings, max_size=3),
        "z": strings,
    },
)
quote = st.fixed_dictionaries(
    {
        "T": st.just("q"),
        "S": symbols,
        "t": timestamps,
        "bp": prices,
        "bs": sizes,
        "ap": prices,
        "as": sizes,
    },
    optional={"bx": strings, "ax": strings, "c": st.lists(strings, max_size=2)},
)
bar = st.fixed_dictionaries(
    {
        "T": st.sampled_from(["b", "u", "d"]),
        "S": symbols,
        "t": timestamps,
        "o": prices,
        "h": prices,
        "l": prices,
        "c": prices,
        "v": sizes,
    },
    optional={"vw": prices, "n": st.integers(0, 10**6) | st.just(1.0)},
)
other = st.sampled_from(
    [
        {"T": "s", "S": "AAPL", "sc": "H", "sm": "halt", "rc": "T1", "t": "x"},
        {"T": "success", "msg": "authenticated"},
        {"T": "c", "S": "AAPL"},
        {"S": "AAPL"},
    ]
)


@st.composite
def spoiled(draw, message):
    """A message with one field replaced by an odd value."""
    message = dict(draw(message))
    key = draw(st.sampled_from(sorted(message)))
    message[key] = draw(odd)
    return message


frames = st.lists(
    trade | quote | bar | other | spoiled(trade) | spoiled(quote) | spoiled(bar),
    min_size=1,
    max_size=6,
)


@SETTINGS
@given(st.lists(trade | quote | bar, min_size=1, max_size=8))
def test_typed_path_equals_dict_path_on_market_data(messages):
    frame = msgpack.packb(messages)
    p = provider()
    assert same(p.parse_frame(frame), p.parse_frame_dicts(frame))


@SETTINGS
@given(frames)
@example([{"T": "q", "S": "", "t": msgpack.Timestamp(1), "bp": 1, "bs": 1,
           "ap": 1, "as": 1}])  # fmt: skip
def test_typed_path_equals_dict_path_on_odd_frames(messages):
    frame = msgpack.packb(messages)
    p = provider()
    assert same(p.parse_frame(frame), p.parse_frame_dicts(frame))


def test_typed_path_takes_market_data_and_leaves_the_rest():
    p = provider()
    ts = msgpack.Timestamp(1613994705, 335689999)
    frame = msgpack.packb(
        [{"T": "q", "S": "META", "t": ts, "bp": 1.5, "bs": 1, "ap": 1.6, "as": 2}]
    )
    (quote,) = typed_events(frame, provider="alpaca", to_canonical=p.to_canonical)
    assert quote.symbol == "FB" and quote.ts.microsecond == 335689  # truncated
    assert quote.bid_price.as_tuple() == Decimal("1.5").as_tuple()
    status = msgpack.packb([{"T": "s", "S": "AAPL", "sc": "H", "t": ts}])
    try:
        typed_events(status, provider="alpaca", to_canonical={})
    except NotTyped:
        pass
    else:
        raise AssertionError("a status frame must take the dict path")
    assert p.parse_frame(status)[0].halted is True


def test_msgpack_fixture_is_bit_identical():
    frame = (FIXTURES / "alpaca" / "trades.msgpack").read_bytes()
    p = provider()
    events = p.parse_frame(frame)
    assert events and same(events, p.parse_frame_dicts(frame))


def flat(events: list) -> list:
    """`parse_feed`'s events with each `QuoteRun` expanded into its quotes."""
    out = []
    for event in events:
        out += event.expand() if event.kind == "quotes" else [event]
    return out


@SETTINGS
@given(st.lists(trade | quote | bar, min_size=1, max_size=8))
def test_feed_path_equals_typed_path_on_market_data(messages):
    frame = msgpack.packb(messages)
    p = provider()
    assert same(flat(p.parse_feed(frame)), p.parse_frame(frame))


@SETTINGS
@given(frames)
def test_feed_path_equals_typed_path_on_odd_frames(messages):
    frame = msgpack.packb(messages)
    p = provider()
    assert same(flat(p.parse_feed(frame)), p.parse_frame(frame))


def test_feed_path_keeps_consecutive_quotes_as_one_run_per_stretch():
    p = provider()
    ts = msgpack.Timestamp(1613994705, 335689999)
    q = {"T": "q", "t": ts, "bp": 1.5, "bs": 1, "ap": 1.6, "as": 2}
    t = {"T": "t", "S": "AAPL", "t": ts, "p": 1.55, "s": 3, "i": 7}
    frame = msgpack.packb([{**q, "S": "META"}, {**q, "S": "AAPL"},
                           {**q, "S": "META"}, t, {**q, "S": "AAPL"}])  # fmt: skip
    first, trade_, second = p.parse_feed(frame)
    assert (first.kind, trade_.kind, second.kind) == ("quotes", "trade", "quotes")
    assert first.count == 3 and sorted(first.groups) == ["AAPL", "FB"]  # canonical
    assert [us for _, us, _ in first.groups["FB"]] == [1613994705335689] * 2
    assert first.first_ts.microsecond == 335689  # truncated, as a Quote's
    assert [q.symbol for q in first.expand()] == ["FB", "AAPL", "FB"]
