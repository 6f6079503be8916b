"""`fetch_snapshots` of each adapter against the real simulator: the previous
close each provider's rule gives, batching within the vendor's limits, and
429/500 handling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata.providers.alpaca import AlpacaProvider
from marketdata.providers.base import ProviderError, RateLimitedError
from marketdata.providers.binance import BinanceProvider
from marketdata.providers.finnhub import FinnhubProvider
from marketdata.providers.timeparse import parse_rfc3339, price_to_decimal, to_decimal
from tests.plugins.simulator import start_simulator

SATURDAY = datetime(2025, 1, 4, 15, 0, tzinfo=UTC)  # stocks closed, crypto trading
THURSDAY = datetime(2025, 1, 2, 5, 0, tzinfo=UTC)  # New York midnight
FRIDAY = datetime(2025, 1, 3, 5, 0, tzinfo=UTC)
CRYPTO = {"BTC/USD": "BTCUSDT", "ETH/USD": "ETHUSDT", "SOL/USD": "SOLUSDT"}
FINNHUB = {"BTC/USD": "BINANCE:BTCUSDT"}


@pytest.fixture
def sim():
    sim = start_simulator(hours="nyse", clock_start=SATURDAY)
    try:
        yield sim
    finally:
        sim.stop_thread()


def alpaca(sim, **options) -> AlpacaProvider:
    return AlpacaProvider(
        key_id=sim.key_id, secret=sim.secret, data_url=sim.http_url, **options
    )


def finnhub(sim, **options) -> FinnhubProvider:
    return FinnhubProvider(
        token=sim.finnhub_token,
        api_url=sim.http_url + "/api/v1",
        symbols=FINNHUB,
        **options,
    )


def binance(sim, **options) -> BinanceProvider:
    options.setdefault("symbols", CRYPTO)
    return BinanceProvider(api_url=sim.http_url, **options)


def daily_close(provider, symbol: str, day: datetime):
    (bar,) = [
        b
        for page in provider.fetch_bars(
            symbol=symbol, start=day, end=day + timedelta(days=1), timeframe="1d"
        )
        for b in page
    ]
    return bar


def latest(provider, symbol: str, kind: str) -> dict:
    path = f"/v2/stocks/{symbol}/{kind}s/latest"
    return provider.http.get_json(path, {"feed": provider.rest_feed})[kind]


def test_alpaca_stock_snapshot_previous_regular_close(sim):
    provider = alpaca(sim)
    snaps = provider.fetch_snapshots(["AAPL", "MSFT", "NOPE"])
    assert set(snaps) == {"AAPL", "MSFT"}
    snap = snaps["AAPL"]
    # The simulator's own latest trade and quote, read from its REST paths.
    trade = latest(provider, "AAPL", "trade")
    quote = latest(provider, "AAPL", "quote")
    assert (snap.last, snap.last_ts, snap.last_size) == (
        price_to_decimal(trade["p"]),
        parse_rfc3339(trade["t"]),
        to_decimal(trade["s"]),
    )
    assert (snap.bid, snap.ask) == (
        price_to_decimal(quote["bp"]),
        price_to_decimal(quote["ap"]),
    )
    # Saturday: the row shows Friday's session against Thursday's close.
    assert snap.prev_close == daily_close(provider, "AAPL", THURSDAY).close
    assert snap.prev_close_ts == THURSDAY
    assert snap.prev_close_source == "alpaca prevDailyBar.c"
    friday = daily_close(provider, "AAPL", FRIDAY)
    assert snap.session_ts == FRIDAY
    assert (snap.open, snap.high, snap.low, snap.volume) == (
        friday.open,
        friday.high,
        friday.low,
        friday.volume,
    )


def test_alpaca_pre_market_takes_the_daily_bar_as_previous_close(sim):
    # Monday 07:00 New York on an extended feed: a pre-market trade, and the
    # latest daily bar is Friday's: that is the previous close.
    sim.set_hours("extended")
    sim.clock.set(start=datetime(2025, 1, 6, 12, 0, tzinfo=UTC))
    provider = alpaca(sim)
    snap = provider.fetch_snapshots(["AAPL"])["AAPL"]
    assert snap.last_ts.date() == datetime(2025, 1, 6).date()
    sim.set_hours("nyse")
    assert snap.prev_close == daily_close(provider, "AAPL", FRIDAY).close
    assert snap.prev_close_source == "alpaca dailyBar.c"
    assert snap.open is None  # Monday's regular session has not begun


def test_alpaca_crypto_snapshot_uses_the_utc_day(sim):
    provider = alpaca(sim)
    snaps = provider.fetch_snapshots(["BTC/USD", "ETH/USD", "AAPL"])
    assert set(snaps) == {"BTC/USD", "ETH/USD", "AAPL"}
    assert provider.http.requests_made == 2  # one stock and one crypto request
    snap = snaps["BTC/USD"]
    friday_utc = datetime(2025, 1, 3, tzinfo=UTC)
    assert snap.prev_close == daily_close(provider, "BTC/USD", friday_utc).close
    assert snap.prev_close_ts == friday_utc
    assert snap.session_ts == datetime(2025, 1, 4, tzinfo=UTC)
    assert snap.low <= snap.last <= snap.high


def test_alpaca_batches_by_snapshot_batch(sim):
    provider = alpaca(sim)
    provider.snapshot_batch = 2
    snaps = provider.fetch_snapshots(["AAPL", "MSFT", "NVDA", "SPY", "QQQ"])
    assert set(snaps) == {"AAPL", "MSFT", "NVDA", "SPY", "QQQ"}
    assert provider.http.requests_made == 3


def test_finnhub_one_quote_per_symbol_behind_the_rate_limiter(sim):
    calls: list[int] = []
    provider = finnhub(sim, rate_limiter=lambda: calls.append(1))
    snaps = provider.fetch_snapshots(["AAPL", "BTC/USD", "NOPE"])
    assert set(snaps) == {"AAPL", "BTC/USD"}  # all-zero body: unknown
    assert provider.http.requests_made == 3 and len(calls) == 3
    reference = alpaca(sim).fetch_snapshots(["AAPL", "BTC/USD"])
    for symbol in ("AAPL", "BTC/USD"):
        assert snaps[symbol].prev_close == reference[symbol].prev_close, symbol
        assert snaps[symbol].prev_close_source == "finnhub pc"
    aapl = snaps["AAPL"]
    assert aapl.last == reference["AAPL"].last
    # Finnhub's `t` is whole seconds.
    assert aapl.last_ts == reference["AAPL"].last_ts.replace(microsecond=0)
    assert (aapl.open, aapl.high, aapl.low) == (
        reference["AAPL"].open,
        reference["AAPL"].high,
        reference["AAPL"].low,
    )


def test_binance_previous_close_from_the_utc_daily_kline(sim):
    provider = binance(sim)
    snaps = provider.fetch_snapshots(["BTC/USD", "ETH/USD", "SOL/USD"])
    assert set(snaps) == {"BTC/USD", "ETH/USD", "SOL/USD"}
    # one ticker/24hr request for the batch, one daily-kline request each
    assert provider.http.requests_made == 4
    friday_utc = datetime(2025, 1, 3, tzinfo=UTC)
    snap = snaps["BTC/USD"]
    assert snap.prev_close == daily_close(provider, "BTC/USD", friday_utc).close
    assert snap.prev_close_source == "binance 1d kline close"
    assert snap.session_ts == datetime(2025, 1, 4, tzinfo=UTC)
    reference = alpaca(sim).fetch_snapshots(["BTC/USD"])["BTC/USD"]
    assert snap.prev_close == reference.prev_close
    assert snap.open == reference.open
    assert snap.bid < snap.ask


def test_binance_unknown_symbol_does_not_cost_the_others(sim):
    provider = binance(sim, symbols={**CRYPTO, "NOPE/USD": "NOPEUSDT"})
    snaps = provider.fetch_snapshots(["BTC/USD", "NOPE/USD", "ETH/USD"])
    assert set(snaps) == {"BTC/USD", "ETH/USD"}


@pytest.mark.parametrize("build", [alpaca, finnhub, binance])
def test_429_is_retried_after_retry_after(sim, build):
    provider = build(sim)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        sim.faults.update(rest_429_rate=0.0)

    provider.http.sleep = sleep
    sim.faults.update(rest_429_rate=1.0, retry_after=2)
    symbol = "AAPL" if build is not binance else "BTC/USD"
    snaps = provider.fetch_snapshots([symbol])
    assert set(snaps) == {symbol}
    assert slept == [2.0] and provider.http.retries_made == 1


def test_rate_limit_and_server_errors_raise_after_the_retries(sim):
    provider = alpaca(sim, max_retries=1)
    provider.http.sleep = lambda seconds: None
    sim.faults.update(rest_429_rate=1.0)
    with pytest.raises(RateLimitedError):
        provider.fetch_snapshots(["AAPL"])
    sim.faults.update(rest_429_rate=0.0, rest_500_rate=1.0)
    with pytest.raises(ProviderError) as excinfo:
        provider.fetch_snapshots(["BTC/USD"])
    assert not excinfo.value.permanent and excinfo.value.status == 500
