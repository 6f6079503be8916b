"""Indicators against TA-Lib: same warm-up NaNs, equal within 1e-9 relative."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib

from marketdata import indicators as ind
from tests.factories import minute_bars

RTOL = 1e-9
OSCILLATOR = np.full(1_000_000, 100.0)


def random_walk(seed: int, count: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, count)))
    high = close * (1 + np.abs(rng.normal(0, 0.001, count)))
    low = close * (1 - np.abs(rng.normal(0, 0.001, count)))
    return high, low, close


def real_shaped(seed: int = 1, days: int = 60) -> tuple[np.ndarray, ...]:
    """Minute bars shaped like a US equity: 390-minute sessions with a U-shaped
    intraday volatility, overnight gaps, fat-tailed jumps, a volatility regime
    change, prices on a 1-cent grid (so ties, flat bars and zero ranges occur)
    and highs/lows from an intra-minute path."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(390)
    u_shape = 1.0 + 1.5 * ((minutes - 195) / 195) ** 2
    price = 187.0
    highs, lows, closes = [], [], []
    for day in range(days):
        price *= math.exp(rng.normal(0, 0.012))  # overnight gap
        regime = 2.0 if 20 <= day < 30 else 1.0
        for minute in minutes:
            sigma = 0.0004 * u_shape[minute] * regime
            steps = rng.standard_t(4, 6) * sigma / math.sqrt(6 * 2)
            path = price * np.exp(np.cumsum(steps))
            if rng.random() < 0.002:
                path *= math.exp(rng.normal(0, 0.01))  # news jump
            path = np.round(path, 2)
            if rng.random() < 0.05:
                path[:] = round(price, 2)  # no trade this minute: flat bar
            price = float(path[-1])
            highs.append(path.max())
            lows.append(path.min())
            closes.append(price)
    return np.array(highs), np.array(lows), np.array(closes)


SERIES = {
    "random_walk_200k": random_walk(42, 200_000),
    "random_walk_drift_down": random_walk(7, 50_000),
    "real_shaped": real_shaped(),
}


def assert_matches(
    ours: np.ndarray, theirs: np.ndarray, scale: np.ndarray | None = None
):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    valid = ~np.isnan(theirs)
    assert valid.any()
    reference = np.abs(theirs[valid])
    if scale is not None:
        # Values that cross or touch zero (MACD, a stochastic of 0) are
        # measured against the series' scale there (the price level, or the
        # 0-100 range of an oscillator) instead of against a value near zero.
        reference = np.maximum(reference, 1e-3 * scale[: len(valid)][valid])
    error = np.abs(ours[valid] - theirs[valid]) / np.maximum(reference, 1e-300)
    assert error.max() <= RTOL, f"max relative error {error.max():.3e}"


@pytest.fixture(params=list(SERIES))
def series(request):
    return SERIES[request.param]


def test_sma_ema(series):
    _h, _l, close = series
    for period in (2, 5, 20, 50, 200):
        assert_matches(ind.sma(close, period), talib.SMA(close, period))
        assert_matches(ind.ema(close, period), talib.EMA(close, period))


def test_rsi(series):
    _h, _l, close = series
    for period in (2, 14, 30):
        assert_matches(ind.rsi(close, period), talib.RSI(close, period))


def test_macd(series):
    _h, _l, close = series
    for params in ((12, 26, 9), (5, 35, 5)):
        for ours, theirs in zip(
            ind.macd(close, *params), talib.MACD(close, *params), strict=True
        ):
            assert_matches(ours, theirs, scale=close)


def test_bollinger(series):
    _h, _l, close = series
    for period, k in ((20, 2.0), (10, 1.5)):
        ours = ind.bollinger(close, period, k)
        theirs = talib.BBANDS(close, period, k, k, 0)
        for a, b in zip(ours, theirs, strict=True):
            assert_matches(a, b)


def test_stochastic(series):
    high, low, close = series
    for k, d, smooth in ((14, 3, 3), (5, 3, 3), (21, 5, 4)):
        ours = ind.stochastic(high, low, close, k, d, smooth)
        theirs = talib.STOCH(high, low, close, k, smooth, 0, d, 0)
        for a, b in zip(ours, theirs, strict=True):
            assert_matches(a, b, scale=OSCILLATOR)


def test_williams_r_and_atr(series):
    high, low, close = series
    for period in (14, 2, 50):
        assert_matches(
            ind.williams_r(high, low, close, period),
            talib.WILLR(high, low, close, period),
            scale=OSCILLATOR,
        )
        assert_matches(
            ind.atr(high, low, close, period), talib.ATR(high, low, close, period)
        )


def test_flat_series_edge_cases():
    """Zero ranges and zero moves: TA-Lib's conventions (0) are kept."""
    flat = np.full(100, 50.0)
    assert_matches(ind.rsi(flat, 14), talib.RSI(flat, 14))
    assert_matches(
        ind.williams_r(flat, flat, flat, 14), talib.WILLR(flat, flat, flat, 14)
    )
    for a, b in zip(
        ind.stochastic(flat, flat, flat),
        talib.STOCH(flat, flat, flat, 14, 3, 0, 3, 0),
        strict=True,
    ):
        assert_matches(a, b)
    upper, middle, lower = ind.bollinger(flat, 20, 2)
    assert np.allclose(upper[19:], 50.0) and np.allclose(lower[19:], 50.0)


@pytest.mark.parametrize("length", [0, 1, 5, 14, 15, 33, 34])
def test_short_inputs_keep_their_shape_and_match_warm_up(length):
    high, low, close = (a[:length] for a in random_walk(3, 100))
    assert_matches_or_all_nan = _all_nan_or_match
    assert_matches_or_all_nan(
        ind.sma(close, 20), talib.SMA(close, 20) if length else np.empty(0)
    )
    assert_matches_or_all_nan(
        ind.rsi(close, 14), talib.RSI(close, 14) if length else np.empty(0)
    )
    for a, b in zip(
        ind.macd(close),
        talib.MACD(close) if length else (np.empty(0),) * 3,
        strict=True,
    ):
        assert_matches_or_all_nan(a, b)
    assert_matches_or_all_nan(
        ind.atr(high, low, close, 14),
        talib.ATR(high, low, close, 14) if length else np.empty(0),
    )


def _all_nan_or_match(ours, theirs):
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    valid = ~np.isnan(theirs)
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=RTOL)


def test_bad_periods_raise():
    close = np.arange(50, dtype=float)
    with pytest.raises(ValueError, match="period must be an integer >= 2"):
        ind.rsi(close, 1)
    with pytest.raises(ValueError, match="integer"):
        ind.sma(close, 2.5)
    with pytest.raises(ValueError, match="one-dimensional"):
        ind.sma(np.ones((3, 3)), 2)


# --- incremental ---------------------------------------------------------------------


def test_incremental_classes_agree_with_vectorized():
    high, low, close = (a[:6000] for a in real_shaped(3, 16))

    def run(state, *arrays):
        out = [state.update(*values) for values in zip(*arrays, strict=True)]
        return np.array(out, dtype=float)

    assert_matches(run(ind.SMA(20), close), ind.sma(close, 20))
    assert_matches(run(ind.EMA(50), close), ind.ema(close, 50))
    assert_matches(run(ind.RSI(14), close), ind.rsi(close, 14))
    assert_matches(run(ind.ATR(14), high, low, close), ind.atr(high, low, close, 14))
    assert_matches(
        run(ind.WilliamsR(14), high, low, close), ind.williams_r(high, low, close, 14)
    )
    macd_rows = run(ind.MACD(12, 26, 9), close)
    for column, vectorized in enumerate(ind.macd(close, 12, 26, 9)):
        assert_matches(macd_rows[:, column], vectorized, scale=close)
    bb_rows = run(ind.Bollinger(20, 2), close)
    for column, vectorized in enumerate(ind.bollinger(close, 20, 2)):
        assert_matches(bb_rows[:, column], vectorized)
    stoch_rows = run(ind.Stochastic(14, 3, 3), high, low, close)
    for column, vectorized in enumerate(ind.stochastic(high, low, close, 14, 3, 3)):
        assert_matches(stoch_rows[:, column], vectorized, scale=OSCILLATOR)


def test_incremental_sma_does_not_drift_over_long_runs():
    _h, _l, close = random_walk(9, 300_000)
    state = ind.SMA(30)
    values = [state.update(v) for v in close]
    assert_matches(np.array(values), talib.SMA(close, 30))


# --- chart specs ---------------------------------------------------------------------


def test_indicator_series_parses_and_aligns():
    high, low, close = random_walk(5, 500)
    opens = close.copy()
    volume = np.ones_like(close)
    out = ind.indicator_series(
        spec="sma:20,ema:50,bb:20:2,rsi:14,macd:12:26:9,stoch,willr:14,atr",
        opens=opens,
        highs=high,
        lows=low,
        closes=close,
        volumes=volume,
    )
    assert list(out) == [
        "sma:20",
        "ema:50",
        "bb:20:2",
        "rsi:14",
        "macd:12:26:9",
        "stoch:14:3:3",
        "willr:14",
        "atr:14",
    ]
    assert set(out["bb:20:2"]) == {"upper", "middle", "lower"}
    assert set(out["macd:12:26:9"]) == {"macd", "signal", "hist"}
    assert set(out["stoch:14:3:3"]) == {"k", "d"}
    for lines in out.values():
        for values in lines.values():
            assert len(values) == len(close)
    assert_matches(out["rsi:14"]["rsi"], talib.RSI(close, 14))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty indicator spec"),
        ("foo:3", "unknown indicator 'foo'"),
        ("sma:abc", "sma period must be an integer, got 'abc'"),
        ("sma:0", "sma period must be between 1 and 1000"),
        ("sma:20:5", "sma takes at most 1 parameter"),
        ("bb:20:x", "bb k must be a number"),
        ("macd:26:12:9", "fast period must be shorter than slow"),
        ("sma:20,,rsi", "empty item"),
        ("rsi:100000", "between 2 and 1000"),
        (",".join(["sma:5"] * 13), "too many indicators"),
    ],
)
def test_bad_specs_have_clear_messages(spec, message):
    with pytest.raises(ValueError, match=message):
        ind.parse_indicator_spec(spec)


# --- bars endpoint: ?indicators= ---------------------------------------------------


@pytest.fixture
def stored_minutes(instruments):
    from datetime import UTC, datetime
    from decimal import Decimal

    from marketdata.services import bars_upsert

    instrument = instruments["BTC/USD"]
    _h, _l, close = random_walk(21, 600)
    start = datetime(2024, 6, 3, tzinfo=UTC)
    rows = minute_bars(
        instrument,
        [f"{c:.8f}" for c in close],
        start=start,
        volumes=[10] * len(close),
        spread=Decimal("0.05"),
    )
    bars_upsert(rows=rows, provider="test")
    return instrument, rows


@pytest.mark.django_db
def test_bars_endpoint_returns_indicators_aligned_and_warmed_up(
    client, user, stored_minutes
):
    _instrument, rows = stored_minutes
    client.force_login(user)
    response = client.get(
        "/api/instruments/BTC/USD/bars",
        {"timeframe": "1m", "limit": "100", "indicators": "sma:20,rsi:14,bb:20:2,macd"},
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert len(data["bars"]) == 100
    lines = data["indicators"]
    assert set(lines) == {"sma:20", "rsi:14", "bb:20:2", "macd:12:26:9"}
    for key in lines:
        for values in lines[key].values():
            assert len(values) == 100
    # Older bars warmed them up: defined from the first returned bar, and equal
    # to TA-Lib over the returned bars plus the warm-up read before them.
    closes = np.array([float(r.close) for r in rows])
    for key in ("sma:20", "rsi:14", "macd:12:26:9"):
        assert None not in next(iter(lines[key].values())), key
    assert_matches(
        np.array(lines["sma:20"]["sma"], dtype=float), talib.SMA(closes, 20)[-100:]
    )
    warm = closes[-(100 + ind.indicators_warmup(spec="rsi:14")) :]
    assert_matches(
        np.array(lines["rsi:14"]["rsi"], dtype=float), talib.RSI(warm, 14)[-100:]
    )


@pytest.mark.django_db
def test_bars_endpoint_nan_is_null_without_history(client, user, stored_minutes):
    client.force_login(user)
    response = client.get(
        "/api/instruments/BTC/USD/bars",
        {
            "timeframe": "1m",
            "start": "2024-06-03T00:00:00Z",
            "end": "2024-06-03T00:30:00Z",
            "indicators": "sma:20",
        },
    )
    values = response.json()["indicators"]["sma:20"]["sma"]
    # The first stored bars have nothing older: 19 nulls, then numbers.
    assert response.json()["bars"][0]["t"] == 1717372800
    assert values[:19] == [None] * 19 and all(isinstance(v, float) for v in values[19:])


@pytest.mark.django_db
def test_bars_endpoint_bad_spec_is_a_clear_400(client, user, stored_minutes):
    client.force_login(user)
    response = client.get("/api/instruments/BTC/USD/bars", {"indicators": "sma:abc"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "indicators: sma period must be an integer, got 'abc' in 'sma:abc'"
    }
    response = client.get("/api/instruments/BTC/USD/bars", {"indicators": "vwap:5"})
    assert response.status_code == 400
    assert "unknown indicator 'vwap'" in response.json()["error"]
