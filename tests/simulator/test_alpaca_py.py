"""The official alpaca-py client cannot tell the simulator from Alpaca."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Bar, Quote, Trade
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from simulator import prices
from tests.plugins.simulator import trading_soon
from tests.simulator.helpers import StreamRunner, wait_for


def test_stock_data_stream_receives_trades_quotes_and_bars(simulator):
    simulator.clock.set(speed=30)  # a minute bar every two real seconds
    stream = StockDataStream(
        simulator.key_id, simulator.secret, url_override=simulator.ws_url + "/v2/iex"
    )
    runner = StreamRunner(stream)
    stream.subscribe_trades(runner.handler("trade"), "AAPL")
    stream.subscribe_quotes(runner.handler("quote"), "MSFT")
    stream.subscribe_bars(runner.handler("bar"), "AAPL")
    runner.start()
    try:
        got = runner.drain(
            lambda items: {k for k, _ in items} >= {"trade", "quote", "bar"}, timeout=30
        )
    finally:
        runner.stop()
    kinds = {kind for kind, _ in got}
    assert kinds >= {"trade", "quote", "bar"}, kinds
    trades = [item for kind, item in got if kind == "trade"]
    quotes = [item for kind, item in got if kind == "quote"]
    bars = [item for kind, item in got if kind == "bar"]
    assert all(isinstance(t, Trade) and t.symbol == "AAPL" for t in trades)
    assert all(isinstance(q, Quote) and q.symbol == "MSFT" for q in quotes)
    assert all(q.ask_price > q.bid_price for q in quotes)
    assert all(isinstance(b, Bar) and b.symbol == "AAPL" for b in bars)
    # The msgpack Timestamp became an aware datetime; the bar is the REST truth.
    bar = bars[0]
    assert bar.timestamp.second == 0 and bar.timestamp.tzinfo is not None
    truth = prices.minute_bar(
        "AAPL", int(bar.timestamp.timestamp()), seed=simulator.seed
    )
    assert (bar.open, bar.high, bar.low, bar.close) == (
        truth.o[0],
        truth.h[0],
        truth.l[0],
        truth.c[0],
    )
    assert bar.volume == truth.volume[0] and bar.trade_count == truth.n[0]


def test_stock_data_stream_wrong_keys_fail_with_auth_failed(simulator, caplog):
    stream = StockDataStream("WRONG", "keys", url_override=simulator.ws_url + "/v2/iex")
    runner = StreamRunner(stream)
    stream.subscribe_trades(runner.handler("trade"), "AAPL")
    caplog.set_level(logging.ERROR, logger="alpaca")
    runner.start()
    try:
        assert wait_for(lambda: "auth failed" in caplog.text, timeout=15)
    finally:
        runner.stop()
    assert runner.items.empty()


def _client(simulator, **kwargs) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(
        kwargs.get("key", simulator.key_id),
        kwargs.get("secret", simulator.secret),
        url_override=simulator.http_url,
    )


def test_historical_client_pages_through_more_than_10000_bars(simulator):
    start = datetime(2024, 3, 4, tzinfo=UTC)
    end = datetime(2024, 3, 7, tzinfo=UTC) - timedelta(minutes=1)  # inclusive end
    symbols = ["SPY", "AAPL", "MSFT"]
    barset = _client(simulator).get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=TimeFrame.Minute,
            start=start,
            end=end,
            feed=DataFeed.IEX,
        )
    )
    total = sum(len(v) for v in barset.data.values())
    assert total == 3 * 3 * 1440 > 10000
    for symbol in symbols:
        truth = prices.minute_bars(
            symbol, start, end + timedelta(minutes=1), seed=simulator.seed
        ).rows()
        got = [
            (
                b.timestamp,
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
                b.vwap,
                b.trade_count,
            )
            for b in barset.data[symbol]
        ]
        assert got == truth


def test_historical_client_limit_counts_across_symbols(simulator):
    barset = _client(simulator).get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["AAPL", "MSFT"],
            timeframe=TimeFrame(15, TimeFrameUnit.Minute),
            start=datetime(2024, 3, 4, tzinfo=UTC),
            end=datetime(2024, 3, 5, tzinfo=UTC),
            limit=120,
        )
    )
    # 97 quarter-hours for AAPL (inclusive end), then 23 for MSFT
    assert len(barset.data["AAPL"]) == 97
    assert len(barset.data["MSFT"]) == 23
    first = barset.data["AAPL"][0]
    truth = prices.minute_bars(
        "AAPL",
        datetime(2024, 3, 4, tzinfo=UTC),
        datetime(2024, 3, 4, 0, 15, tzinfo=UTC),
        seed=simulator.seed,
    )
    assert first.open == truth.o[0] and first.close == truth.c[-1]
    assert first.high == truth.h.max() and first.volume == truth.volume.sum()


def test_historical_client_latest_trade_and_quote(simulator):
    client = _client(simulator)
    trades = client.get_stock_latest_trade(
        StockLatestTradeRequest(symbol_or_symbols=["AAPL"])
    )
    quotes = client.get_stock_latest_quote(
        StockLatestQuoteRequest(symbol_or_symbols="MSFT")
    )
    now = datetime.now(UTC)
    assert (
        now - timedelta(minutes=2)
        < trades["AAPL"].timestamp
        <= now + timedelta(seconds=1)
    )
    assert quotes["MSFT"].ask_price > quotes["MSFT"].bid_price > 0


def test_historical_client_wrong_keys_forbidden(simulator):
    with pytest.raises(APIError) as excinfo:
        _client(simulator, secret="nope").get_stock_bars(
            StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Minute)
        )
    assert excinfo.value.status_code == 403
    assert "forbidden" in str(excinfo.value)


def test_crypto_stream_and_history_clients(simulator):
    from alpaca.data.historical.crypto import CryptoHistoricalDataClient
    from alpaca.data.live.crypto import CryptoDataStream
    from alpaca.data.requests import CryptoBarsRequest, CryptoLatestQuoteRequest

    simulator.clock.set(start=trading_soon("BTC/USD"))
    stream = CryptoDataStream(
        simulator.key_id,
        simulator.secret,
        url_override=simulator.ws_url + "/v1beta3/crypto/us",
    )
    runner = StreamRunner(stream)
    stream.subscribe_trades(runner.handler("trade"), "BTC/USD")
    runner.start()
    try:
        got = runner.drain(lambda items: len(items) >= 2, timeout=60)
    finally:
        runner.stop()
    assert len(got) >= 2 and all(t.symbol == "BTC/USD" and t.size > 0 for _, t in got)

    client = CryptoHistoricalDataClient(url_override=simulator.http_url)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    barset = client.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols=["ETH/USD", "BTC/USD"],
            timeframe=TimeFrame.Hour,
            start=start,
            end=start + timedelta(days=2),
        )
    )
    assert len(barset.data["BTC/USD"]) == len(barset.data["ETH/USD"]) == 49
    truth = prices.bars(
        "ETH/USD",
        start,
        start + timedelta(days=2, hours=1),
        seed=simulator.seed,
        unit="hour",
    )
    assert [b.close for b in barset.data["ETH/USD"]] == truth.c.tolist()
    quote = client.get_crypto_latest_quote(
        CryptoLatestQuoteRequest(symbol_or_symbols="BTC/USD")
    )
    assert quote["BTC/USD"].ask_price > quote["BTC/USD"].bid_price
