"""The simulated price model: deterministic, random-access, realistic, and
every minute's trades realize exactly that minute's bar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import prices

SEED = 4242
SYMBOLS = ["AAPL", "SPY", "BRK.B", "BTC/USD", "DOGE/USD", "SOL/USD", "XRP/USD"]


def test_same_seed_same_bars_and_other_seed_differs():
    start, end = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 2, tzinfo=UTC)
    first = prices.minute_bars("AAPL", start, end, seed=SEED).rows()
    prices.day_table.cache_clear()
    prices.minute_ticks.cache_clear()
    again = prices.minute_bars("AAPL", start, end, seed=SEED).rows()
    other = prices.minute_bars("AAPL", start, end, seed=SEED + 1).rows()
    assert first == again
    assert len(first) == len(other) == 1440
    assert [r[4] for r in first] != [r[4] for r in other]


def test_random_access_matches_a_long_range():
    start = datetime(2022, 12, 30, 22, tzinfo=UTC)
    whole = prices.minute_bars("BTC/USD", start, start + timedelta(hours=6), seed=SEED)
    pieces = [
        prices.minute_bar("BTC/USD", int(t), seed=SEED).rows()[0]
        for t in whole.ts[::37]
    ]
    assert pieces == whole.rows()[::37]
    # open of each minute is the previous close, across the day boundary too
    assert np.array_equal(whole.o[1:], whole.c[:-1])


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_prices_respect_the_instrument_increment(symbol):
    spec = prices.symbol_spec(symbol)
    bars = prices.minute_bars(
        symbol,
        datetime(2024, 2, 1, tzinfo=UTC),
        datetime(2024, 2, 2, tzinfo=UTC),
        seed=SEED,
    )
    for column in (bars.o, bars.h, bars.l, bars.c):
        steps = column / spec.increment
        assert np.allclose(steps, np.round(steps), atol=1e-6)
        assert (column > 0).all()
    assert (bars.h >= np.maximum(bars.o, bars.c)).all()
    assert (bars.l <= np.minimum(bars.o, bars.c)).all()


@settings(max_examples=60, deadline=None)
@given(
    symbol=st.sampled_from(SYMBOLS),
    minute=st.integers(
        min_value=int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) // 60,
        max_value=int(datetime(2040, 1, 1, tzinfo=UTC).timestamp()) // 60,
    ),
)
def test_ticks_realize_the_bar_exactly(symbol, minute):
    bar = prices.minute_bar(symbol, minute * 60, seed=SEED)
    ticks = prices.minute_ticks(symbol, minute * 60, seed=SEED)
    spec = prices.symbol_spec(symbol)
    assert ticks.price[0] == bar.o[0] and ticks.price[-1] == bar.c[0]
    assert ticks.price.max() == bar.h[0] and ticks.price.min() == bar.l[0]
    assert len(ticks.price) == bar.n[0]
    assert round(float(ticks.size.sum()), spec.size_decimals) == bar.volume[0]
    vwap = float((ticks.price * ticks.size).sum() / ticks.size.sum())
    assert vwap == pytest.approx(float(bar.vwap[0]), abs=10 ** -(spec.decimals + 3))
    assert (np.diff(ticks.offset_ns) >= 0).all()
    assert 0 <= ticks.offset_ns[0] and ticks.offset_ns[-1] < 60_000_000_000
    steps = ticks.price / spec.increment
    assert np.allclose(steps, np.round(steps), atol=1e-6)


def test_nyse_hours_keep_equities_to_sessions_and_crypto_trades_always():
    def count(symbol: str, day: date) -> int:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return len(
            prices.minute_bars(
                symbol, start, start + timedelta(days=1), seed=SEED, hours="nyse"
            )
        )

    assert count("AAPL", date(2024, 7, 10)) == 390  # regular Wednesday
    assert count("AAPL", date(2024, 7, 13)) == 0  # Saturday
    assert count("AAPL", date(2024, 7, 4)) == 0  # Independence Day
    assert (
        count("AAPL", date(2024, 11, 29)) == 210
    )  # day after Thanksgiving, 13:00 close
    assert count("BTC/USD", date(2024, 7, 13)) == 1440
    first = prices.minute_bars(
        "AAPL",
        datetime(2024, 7, 10, tzinfo=UTC),
        datetime(2024, 7, 11, tzinfo=UTC),
        seed=SEED,
        hours="nyse",
    ).rows()[0]
    assert first[0] == datetime(2024, 7, 10, 13, 30, tzinfo=UTC)  # 09:30 New York


def test_daily_volatility_is_realistic_per_asset_class():
    start, end = datetime(2021, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC)
    for symbol, lo, hi in (("AAPL", 0.008, 0.03), ("BTC/USD", 0.02, 0.06)):
        daily = prices.daily_bars(symbol, start, end, seed=SEED)
        returns = np.diff(np.log(daily.c))
        assert lo < returns.std() < hi, (symbol, returns.std())
        assert daily.c.max() / daily.c.min() < 6


def test_daily_bars_are_stamped_at_new_york_midnight():
    winter = prices.daily_bars(
        "AAPL",
        datetime(2024, 1, 3, tzinfo=UTC),
        datetime(2024, 1, 4, tzinfo=UTC),
        seed=SEED,
    ).rows()
    summer = prices.daily_bars(
        "AAPL",
        datetime(2024, 7, 9, tzinfo=UTC),
        datetime(2024, 7, 10, tzinfo=UTC),
        seed=SEED,
    ).rows()
    assert winter[0][0] == datetime(2024, 1, 3, 5, tzinfo=UTC)
    assert summer[0][0] == datetime(2024, 7, 9, 4, tzinfo=UTC)
    minutes = prices.minute_bars(
        "AAPL",
        datetime(2024, 7, 9, 13, 30, tzinfo=UTC),
        datetime(2024, 7, 9, 20, tzinfo=UTC),
        seed=SEED,
        hours="nyse",
    )
    assert summer[0][1] == minutes.o[0] and summer[0][4] == minutes.c[-1]
    assert summer[0][5] == minutes.volume.sum()


def test_unknown_symbols_have_no_bars():
    assert prices.symbol_spec("NOPE") is None
    assert len(prices.minute_bars("NOPE", 0, 86400 * 20000, seed=SEED)) == 0


def test_five_years_of_minutes_is_vectorized():
    bars = prices.minute_bars(
        "MSFT",
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
        seed=SEED,
        hours="nyse",
    )
    assert 480_000 < len(bars) < 500_000  # ~1258 sessions x 390 minutes
    assert (np.diff(bars.ts) > 0).all()
