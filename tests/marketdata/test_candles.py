"""Candlestick patterns against TA-Lib's CDL* functions: equal element by
element on real price files, long seeded series full of ties, and
hypothesis-made bars."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata import candles as cd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OHLC_NAMES = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "px_open": "open",
    "px_high": "high",
    "px_low": "low",
    "px_last": "close",
}


def read_ohlc(path: Path) -> tuple[np.ndarray, ...] | None:
    """Open, high, low, close columns of a price file (rows whose four
    prices are not all numbers are skipped), or None without such columns."""
    text = path.read_text()
    delimiter = ";" if ";" in text.splitlines()[0] else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    header = [name.strip("<> ").lower() for name in rows[0]]
    where = {OHLC_NAMES[n]: i for i, n in enumerate(header) if n in OHLC_NAMES}
    if len(where) != 4:
        return None
    columns: list[list[float]] = [[], [], [], []]
    for row in rows[1:]:
        try:
            values = [float(row[where[k]]) for k in ("open", "high", "low", "close")]
        except (ValueError, IndexError):
            continue
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return tuple(np.array(c) for c in columns)


REAL_FILES = {
    path.name: ohlc
    for path in sorted([*FIXTURES.glob("ohlc/*.csv"), *FIXTURES.glob("csv/*.*")])
    if path.suffix in (".csv", ".txt") and (ohlc := read_ohlc(path)) is not None
}


def talib_patterns(o, h, lo, c) -> dict[str, np.ndarray]:
    return {
        name: getattr(talib, function)(o, h, lo, c)
        for name, function in cd.TALIB_FUNCTIONS.items()
    }


def assert_equal_to_talib(o, h, lo, c) -> dict[str, int]:
    """Every pattern equal to TA-Lib at every bar; returns how often each fired."""
    o, h, lo, c = (np.asarray(a, dtype=np.float64) for a in (o, h, lo, c))
    ours = cd.detect(o, h, lo, c)
    theirs = talib_patterns(o, h, lo, c)
    assert list(ours) == list(cd.CANDLE_PATTERNS)
    for name, expected in theirs.items():
        got = ours[name]
        assert got.dtype == np.int32 and got.shape == expected.shape, name
        differ = np.flatnonzero(got != expected)
        assert differ.size == 0, (
            f"{name} ({cd.TALIB_FUNCTIONS[name]}) differs at bars {differ[:10].tolist()}: "
            f"ours {got[differ[:10]].tolist()}, TA-Lib {expected[differ[:10]].tolist()}"
        )
    return {name: int(np.count_nonzero(v)) for name, v in theirs.items()}


# --- real prices ---------------------------------------------------------------


def test_real_price_files_are_found():
    # Daily GOOG 2004-2013, hourly EUR/USD, monthly BTC/USD, and the CSV
    # import fixtures (AAPL, MSFT, ... a few bars each).
    assert {"goog_daily.csv", "eurusd_hourly.csv", "btcusd_monthly.csv"} <= set(
        REAL_FILES
    )
    assert sum(len(v[0]) for v in REAL_FILES.values()) > 7000


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_equal_to_talib_on_real_price_files(name):
    o, h, lo, c = REAL_FILES[name]
    fired = assert_equal_to_talib(o, h, lo, c)
    if len(c) > 1000:
        # A real series long enough shows most patterns: the comparison is
        # not one of zeros against zeros.
        assert sum(1 for count in fired.values() if count) >= 9, fired


def test_real_files_at_other_price_scales():
    """The same bars in cents, in pips and scaled by a non-round factor:
    averages land on other roundings, and must still round as TA-Lib's."""
    o, h, lo, c = REAL_FILES["goog_daily.csv"]
    for scale in (100.0, 1e-4, 0.1, 3.7, 1 / 3):
        assert_equal_to_talib(o * scale, h * scale, lo * scale, c * scale)


# --- long seeded series with ties ------------------------------------------------


def tied_series(seed: int, count: int, tick: float, spread: int = 6):
    """OHLC on a coarse price grid: equal opens and closes (dojis), bodies
    and shadows that equal each other and the running averages, gaps of zero.
    Prices are integer ticks times `tick`, so ties are exact in binary only
    for some ticks (0.25, 1) and near-ties for the others (0.01, 0.1)."""
    rng = np.random.default_rng(seed)
    close = 1000 + np.cumsum(rng.integers(-spread, spread + 1, count))
    open_ = np.r_[close[0], close[:-1]] + rng.integers(-2, 3, count) * (
        rng.random(count) < 0.5
    )
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = top + rng.integers(0, spread, count) * (rng.random(count) < 0.6)
    low = bottom - rng.integers(0, spread, count) * (rng.random(count) < 0.6)
    return tuple(a * tick for a in (open_, high, low, close))


def smooth_series(seed: int, count: int):
    """A log-normal walk with float prices: no exact ties."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.003, count))
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = top * np.exp(np.abs(rng.normal(0, 0.004, count)))
    low = bottom * np.exp(-np.abs(rng.normal(0, 0.004, count)))
    return open_, high, low, close


@pytest.mark.parametrize("tick", [1.0, 0.25, 0.1, 0.01, 1e-5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_equal_to_talib_on_long_tied_series(seed, tick):
    fired = assert_equal_to_talib(*tied_series(seed, 100_000, tick))
    assert all(fired.values()), fired  # every pattern fires somewhere


@pytest.mark.parametrize("seed", [4, 5])
def test_equal_to_talib_on_long_smooth_series(seed):
    assert_equal_to_talib(*smooth_series(seed, 200_000))


def test_bodies_that_equal_their_average():
    """Every body 3 ticks of 0.1 and every range 5: a body is exactly as long
    as the average, and the average's rounding decides `<` against `<=`."""
    count = 400
    close = np.where(np.arange(count) % 2 == 0, 100.3, 100.0)
    open_ = np.where(np.arange(count) % 2 == 0, 100.0, 100.3)
    high, low = np.full(count, 100.4), np.full(count, 99.9)
    assert_equal_to_talib(open_, high, low, close)


def drift_series(seed: int, count: int = 5000):
    """Bodies that all equal their 10-bar average (0.3 on 0.1 ticks), with
    rare huge candles. A running total that has held a huge range keeps its
    rounding after that range left the window, so whether a body is "short"
    or "long" there depends on TA-Lib's order of additions: a fresh sum per
    window gives other answers for some seeds (harami, at hundreds of bars)."""
    rng = np.random.default_rng(seed)
    even = np.arange(count) % 2 == 0
    open_ = np.where(even, 100.0, 100.3)
    close = np.where(even, 100.3, 100.0)
    high, low = np.full(count, 100.4), np.full(count, 99.9)
    spikes = rng.random(count) < 0.03
    size = rng.uniform(1e2, 1e5, count)
    close = np.where(spikes, open_ + size, close)
    high = np.where(spikes, close + size * 0.1, high)
    low = np.where(spikes, open_ - size * 0.37, low)
    return open_, high, low, close


@pytest.mark.parametrize("seed", range(12))
def test_running_totals_round_as_talibs(seed):
    fired = assert_equal_to_talib(*drift_series(seed))
    assert fired["doji"] and fired["harami"]


# --- short inputs and hypothesis ---------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 20])
def test_short_inputs_have_talib_lookback_zeros(length):
    o, h, lo, c = (a[:length] for a in tied_series(7, 50, 0.25))
    assert_equal_to_talib(o, h, lo, c)


def test_lookbacks_are_talibs():
    from talib import abstract

    for name, function in cd.TALIB_FUNCTIONS.items():
        assert cd.LOOKBACK[name] == abstract.Function(function).lookback, name


TICKS = st.sampled_from([1.0, 0.25, 0.1, 0.01, 0.3, 1e-5, 7.0])


@st.composite
def ohlc_bars(draw):
    count = draw(st.integers(0, 80))
    ints = st.integers(0, 12)
    rows = draw(st.lists(st.tuples(ints, ints, ints, ints), min_size=count))
    tick = draw(TICKS)
    base = draw(st.integers(1, 500))
    o = np.array([base + r[0] for r in rows], dtype=float)
    c = np.array([base + r[1] for r in rows], dtype=float)
    h = np.maximum(o, c) + np.array([r[2] % 5 for r in rows], dtype=float)
    lo = np.minimum(o, c) - np.array([r[3] % 5 for r in rows], dtype=float)
    return o * tick, h * tick, lo * tick, c * tick


@settings(max_examples=300, deadline=None)
@given(ohlc_bars())
def test_equal_to_talib_on_hypothesis_bars(bars):
    assert_equal_to_talib(*bars)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(*[st.floats(0.5, 2.0, allow_nan=False)] * 4),
        min_size=15,
        max_size=60,
    )
)
def test_equal_to_talib_on_arbitrary_floats(rows):
    """Prices in no particular order (a high under the close, say): TA-Lib
    takes them as they come, and so do the rules."""
    o, h, lo, c = (np.array(column) for column in zip(*rows, strict=True))
    assert_equal_to_talib(o, h, lo, c)


# --- bad input, events ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (([1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 2.0]), "same length"),
        (([1.0, float("nan")],) * 4, "finite"),
        (([1.0, float("inf")],) * 4, "finite"),
        ((np.ones((2, 2)),) * 4, "one-dimensional"),
        ((["a"],) * 4, "could not convert|finite"),
    ],
)
def test_bad_input_is_a_clear_error(arrays, message):
    with pytest.raises(ValueError, match=message):
        cd.detect(*arrays)


def test_unknown_pattern_name():
    with pytest.raises(ValueError, match="unknown candlestick pattern 'kicker'"):
        cd.pattern("kicker", [1.0], [1.0], [1.0], [1.0])


def test_every_pattern_has_a_label_explanation_and_function():
    assert set(cd.CANDLE_PATTERNS) == set(cd.EXPLANATIONS) == set(cd.TALIB_FUNCTIONS)
    assert cd.WARMUP == 13


def planted_hammer(count: int = 40):
    """A falling series of ordinary candles ending in a hammer at `count`-1."""
    o = 100.0 - np.arange(count, dtype=float)
    c = o - 0.8
    h, lo = o + 0.3, c - 0.3
    o[-1], c[-1], h[-1], lo[-1] = (
        lo[-2] + 0.05,
        lo[-2] + 0.2,
        lo[-2] + 0.22,
        lo[-2] - 1.5,
    )
    return o, h, lo, c


def test_candle_events_name_the_bars_where_patterns_fire():
    from datetime import UTC, datetime, timedelta

    o, h, lo, c = planted_hammer()
    assert talib.CDLHAMMER(o, h, lo, c)[-1] == 100
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        (start + timedelta(days=i), o[i], h[i], lo[i], c[i], 1.0) for i in range(len(c))
    ]
    events = cd.candle_events(rows=rows, skip=5)
    hammer = [e for e in events if e["pattern"] == "hammer"]
    assert hammer == [
        {
            "t": int((start + timedelta(days=len(c) - 1)).timestamp()),
            "pattern": "hammer",
            "label": "Hammer",
            "direction": "bullish",
            "value": 100,
            "explanation": cd.EXPLANATIONS["hammer"],
        }
    ]
    assert all(e["t"] >= int(rows[5][0].timestamp()) for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert cd.candle_events(rows=[], skip=0) == []
