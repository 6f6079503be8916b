"""Property tests: the fast timestamp/number paths equal the straightforward ones.

`parse_rfc3339`, the epoch converters and `to_decimal` take shortcuts (C
`fromisoformat`, float `fromtimestamp`, a float -> Decimal cache). Each must
give exactly what the reference conversion gives: the same instant, the same
`tzinfo`, the same Decimal digits and exponent, or the same error.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from marketdata.providers import timeparse
from marketdata.providers.timeparse import (
    EPOCH,
    decimal_from_float_reference,
    from_epoch_ms,
    from_epoch_seconds,
    from_epoch_us,
    parse_rfc3339,
    parse_rfc3339_reference,
    price_to_decimal,
    to_decimal,
)

# 600 examples per property in `make test`; TAPELINE_PROPERTY_EXAMPLES=5000
# for a deeper search after changing a fast path.
SETTINGS = settings(
    max_examples=int(os.environ.get("TAPELINE_PROPERTY_EXAMPLES", "600")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def outcome(func, value):
    """(result, None) or (None, exception type): what a call produced."""
    try:
        return func(value), None
    except (ValueError, OverflowError, TypeError) as exc:
        return None, type(exc)


def same_datetime(a: datetime, b: datetime) -> bool:
    return a == b and a.tzinfo is b.tzinfo and a.utcoffset() == b.utcoffset()


def same_decimal(a: Decimal, b: Decimal) -> bool:
    # Decimal("1.0") == Decimal("1"): compare digits and exponent too.
    return a.as_tuple() == b.as_tuple() and str(a) == str(b)


# --- RFC 3339 ------------------------------------------------------------------

fractions = st.text(alphabet="0123456789", min_size=0, max_size=9)
OFFSETS = st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0530", "-08:00"]) | (
    st.builds(
        lambda sign, h, m, colon: f"{sign}{h:02d}{colon}{m:02d}",
        st.sampled_from("+-"),
        st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from(["", ":"]),
    )
)


CANONICAL_T = st.just("T")


@st.composite
def rfc3339(draw, separators=CANONICAL_T, offsets=OFFSETS):
    ts = draw(
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
    )
    frac = draw(fractions)
    text = (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}{draw(separators)}"
        f"{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    )
    if frac:
        text += "." + frac
    return text + draw(offsets), ts, frac


@SETTINGS
@given(rfc3339(separators=st.sampled_from(["T", "t", " "])))
@example(("2021-02-22T15:51:45.335689322Z", None, "335689322"))
@example(("2024-03-12T14:30:05.999999999Z", None, "999999999"))
@example(("2024-03-12T14:30:05.000000999Z", None, "000000999"))
@example(("2024-03-12T14:30:05.1Z", None, "1"))
def test_valid_timestamps_match_reference(case):
    text, _, _ = case
    fast, fast_error = outcome(parse_rfc3339, text)
    ref, ref_error = outcome(parse_rfc3339_reference, text)
    assert fast_error is ref_error
    if ref is not None:
        assert same_datetime(fast, ref), text
        assert fast.tzinfo is UTC


@SETTINGS
@given(rfc3339())
def test_canonical_timestamps_truncate_to_microseconds(case):
    text, ts, frac = case
    if not text.endswith("Z"):
        return
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    expected = ts.replace(microsecond=micro, tzinfo=UTC)
    assert same_datetime(parse_rfc3339(text), expected)


# Characters that trip up ISO parsers: other separators, week dates, signs,
# non-ASCII digits (which the regex's \d reads but the C parser does not).
MUTATIONS = "0123456789-:.,TtZzW+ _\u0661\uff11\u00e9"


@SETTINGS
@given(
    rfc3339(),
    st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from(MUTATIONS), st.booleans()),
        min_size=1,
        max_size=3,
    ),
)
@example(("2024-03-12T14:30:05Z", None, ""), [(5, "W", False)])
@example(("2024-03-12T14:30:05.123Z", None, ""), [(19, ",", False)])
@example(("2024-03-12T14:30:05.123456789Z", None, ""), [(28, "9", True)])
def test_mutated_timestamps_match_reference(case, edits):
    text = case[0]
    for position, char, insert in edits:
        position = min(position, len(text))
        if insert:
            text = text[:position] + char + text[position:]
        else:
            text = text[:position] + char + text[position + 1 :]
    fast, fast_error = outcome(parse_rfc3339, text)
    ref, ref_error = outcome(parse_rfc3339_reference, text)
    assert fast_error is ref_error, text
    if ref is not None:
        assert same_datetime(fast, ref), text


@pytest.mark.parametrize(
    "text",
    [
        "2024-W10-2T14:30:05Z",  # ISO week date: fromisoformat reads it
        "2024-03-12T14:30:05,123Z",  # comma fraction
        "2024-03-12T14:30:05.1234567891Z",  # 10 fraction digits
        "2024-03-12T14:30:05.Z",  # empty fraction
        "2024-02-30T14:30:05Z",  # no such day
        "2024-03-12T24:00:00Z",
        "2024-03-12T14:30:60Z",
        "",
        "Z",
    ],
)
def test_shapes_outside_rfc3339_are_rejected(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


# --- epoch numbers ------------------------------------------------------------

BOUNDARY_S = 2**32


def assert_same_outcome(fast, reference, value) -> None:
    got, got_error = outcome(fast, value)
    want, want_error = outcome(reference, value)
    assert got_error is want_error, value
    if want is not None:
        assert same_datetime(got, want), value


@SETTINGS
@given(st.integers(-(10**14), BOUNDARY_S * 1000 + 10**9))
@example(0)
@example(BOUNDARY_S * 1000 - 1)
@example(BOUNDARY_S * 1000)
@example(-1)
@example(1710253800999)
def test_epoch_ms_matches_timedelta(ms):
    assert_same_outcome(
        from_epoch_ms, lambda v: EPOCH + timedelta(milliseconds=int(v)), ms
    )
    assert_same_outcome(
        from_epoch_ms, lambda v: EPOCH + timedelta(milliseconds=int(v)), float(ms)
    )


@SETTINGS
@given(st.integers(-(10**17), BOUNDARY_S * 1_000_000 + 10**12))
@example(BOUNDARY_S * 1_000_000 - 1)
@example(1710253800999999)
@example(999_999)
def test_epoch_us_matches_timedelta(us):
    assert_same_outcome(
        from_epoch_us, lambda v: EPOCH + timedelta(microseconds=int(v)), us
    )


@SETTINGS
@given(st.integers(-(10**12), BOUNDARY_S + 10**8))
@example(BOUNDARY_S - 1)
def test_epoch_seconds_matches_timedelta(seconds):
    assert_same_outcome(
        from_epoch_seconds, lambda v: EPOCH + timedelta(seconds=v), seconds
    )


def test_epoch_ms_dense_sweep_around_now():
    # Every millisecond of a few seconds, where a float rounding slip would show.
    for base in (1710253800000, 2**32 * 1000 - 5000, 4102444800000):
        for ms in range(base, base + 5000):
            assert from_epoch_ms(ms) == EPOCH + timedelta(milliseconds=ms), ms


@pytest.mark.parametrize("bad", [True, None, "1710253800000", [1]])
def test_epoch_rejects_non_numbers(bad):
    for func in (from_epoch_ms, from_epoch_us, from_epoch_seconds):
        with pytest.raises(ValueError):
            func(bad)


# --- Decimals -----------------------------------------------------------------


@SETTINGS
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=20)
)
@example([0.0, -0.0, 0.0])
@example([-0.0, 0.0])
@example([1.0, 1e16, 1e-7, 87.66, 87.66])
def test_float_decimals_match_reference(values):
    # Twice over: the second pass is served from the cache.
    for value in values + values:
        ref, ref_error = outcome(decimal_from_float_reference, value)
        for convert in (price_to_decimal, to_decimal):
            fast, fast_error = outcome(convert, value)
            assert fast_error is ref_error
            if ref is not None:
                assert same_decimal(fast, ref), value


@SETTINGS
@given(
    st.integers() | st.text(max_size=20) | st.from_regex(r"\A-?\d{1,12}(\.\d{0,10})?\Z")
)
def test_int_and_string_decimals_match_reference(value):
    def reference(v):
        if isinstance(v, int):
            return Decimal(v)
        result = Decimal(v.strip())
        if not result.is_finite():
            raise ValueError
        return result

    try:
        ref, ref_error = reference(value), None
    except (ArithmeticError, ValueError):
        ref, ref_error = None, ValueError
    for convert in (price_to_decimal, to_decimal, to_decimal):  # twice: cached
        fast, fast_error = outcome(convert, value)
        assert fast_error is ref_error
        if ref is not None:
            assert same_decimal(fast, ref)


def test_int_after_equal_float_keeps_its_own_digits():
    assert str(price_to_decimal(1.0)) == "1.0"
    assert str(price_to_decimal(1)) == "1"
    assert str(price_to_decimal(1.0)) == "1.0"


def test_caches_are_bounded():
    for i in range(timeparse._PRICE_CACHE_SIZE * 2):
        assert str(price_to_decimal(i + 0.5)) == f"{i}.5"
        assert str(to_decimal(i)) == str(i)
    assert len(timeparse._PRICE_CACHE) <= timeparse._PRICE_CACHE_SIZE
    assert len(timeparse._INT_CACHE) <= timeparse._INT_CACHE_SIZE


def test_bool_is_not_served_from_the_int_cache():
    assert str(to_decimal(1)) == "1"
    with pytest.raises(ValueError):
        to_decimal(True)


@pytest.mark.parametrize("bad", [True, None, [1.5], float("nan"), float("inf"), "abc"])
def test_non_numbers_raise(bad):
    for convert in (price_to_decimal, to_decimal):
        with pytest.raises(ValueError):
            convert(bad)


@SETTINGS
@given(
    st.lists(
        st.from_regex(r"\A-?\d{1,8}(\.\d{0,8})?\Z")
        | st.text(max_size=12)
        | st.sampled_from(["0.00000000", "-0", "1e5", "Infinity", "NaN", " 1.5 "]),
        min_size=1,
        max_size=10,
    )
)
def test_binance_price_strings_match_plain_decimal(values):
    from marketdata.providers.binance import _dec, _price

    for value in values + values:  # the second pass is served from the cache
        want, want_error = outcome(_dec, value)
        got, got_error = outcome(_price, value)
        assert got_error is want_error, value
        if want is not None:
            assert same_decimal(got, want), value


# --- adapters: positional construction + fast paths == the plain recipe --------

prices = st.floats(min_value=0.0001, max_value=1e6, allow_nan=False) | st.integers(
    0, 10**6
)
sizes = st.integers(0, 10**6) | st.floats(min_value=0, max_value=1e6)


@st.composite
def alpaca_message(draw):
    text, _, _ = draw(rfc3339(offsets=st.just("Z")))
    kind = draw(st.sampled_from("tqb"))
    symbol = draw(st.sampled_from(["AAPL", "BTC/USD", "SPY"]))
    if kind == "t":
        return {
            "T": "t",
            "S": symbol,
            "i": draw(st.integers(0, 2**63 - 1)),
            "x": draw(st.sampled_from(["V", "Q", 5])),
            "p": draw(prices),
            "s": draw(sizes),
            "t": text,
            "c": draw(st.lists(st.sampled_from(["@", "I", 7]), max_size=3)),
        }
    if kind == "q":
        return {
            "T": "q",
            "S": symbol,
            "bx": draw(st.sampled_from(["V", None])),
            "bp": draw(prices),
            "bs": draw(sizes),
            "ax": "Q",
            "ap": draw(prices),
            "as": draw(sizes),
            "t": text,
        }
    return {
        "T": "b",
        "S": symbol,
        "o": draw(prices),
        "h": draw(prices),
        "l": draw(prices),
        "c": draw(prices),
        "v": draw(sizes),
        "n": draw(st.integers(0, 10**5) | st.none()),
        "vw": draw(prices | st.none()),
        "t": text,
    }


def alpaca_reference(m: dict, canonical: dict[str, str]):
    from marketdata.events import BarEvent, Quote, Trade

    def dec(v):
        return decimal_from_float_reference(v) if type(v) is float else Decimal(v)

    def text(v):
        return v if isinstance(v, str) else ""

    symbol = canonical.get(m["S"], m["S"])
    ts = parse_rfc3339_reference(m["t"])
    if m["T"] == "t":
        return Trade(
            symbol=symbol,
            ts=ts,
            price=dec(m["p"]),
            size=dec(m["s"]),
            provider="alpaca",
            trade_id=str(m["i"]),
            exchange=text(m["x"]),
            conditions=tuple(c for c in m["c"] if isinstance(c, str)),
        )
    if m["T"] == "q":
        return Quote(
            symbol=symbol,
            ts=ts,
            bid_price=dec(m["bp"]),
            bid_size=dec(m["bs"]),
            ask_price=dec(m["ap"]),
            ask_size=dec(m["as"]),
            provider="alpaca",
            bid_exchange=text(m["bx"]),
            ask_exchange=text(m["ax"]),
        )
    return BarEvent(
        symbol=symbol,
        ts=ts,
        open=dec(m["o"]),
        high=dec(m["h"]),
        low=dec(m["l"]),
        close=dec(m["c"]),
        volume=dec(m["v"]),
        provider="alpaca",
        timeframe="1m",
        vwap=None if m["vw"] is None else dec(m["vw"]),
        trade_count=m["n"],
        updated=False,
    )


@SETTINGS
@given(st.lists(alpaca_message(), min_size=1, max_size=8))
def test_alpaca_events_equal_keyword_construction(messages):
    import orjson

    from marketdata.providers.alpaca import AlpacaProvider

    canonical = {"BTC/USD": "BTC-USD"}
    provider = AlpacaProvider(key_id="k", secret="s", symbols={"BTC-USD": "BTC/USD"})
    frame = orjson.dumps(messages + messages)  # twice: caches warm the second half
    expected = [alpaca_reference(m, canonical) for m in messages + messages]
    # repr shows Decimal digits and tzinfo, which == would not compare
    assert repr(provider.parse_frame(frame)) == repr(expected)
