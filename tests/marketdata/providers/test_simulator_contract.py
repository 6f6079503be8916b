"""The adapters against the built-in simulator over real loopback sockets:
history paging, injected 429/500s, bad credentials, and the live stream."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import websocket

from marketdata.events import BarEvent, Control, ControlType, Quote, Trade
from marketdata.providers.alpaca import AlpacaProvider
from marketdata.providers.base import AuthenticationError
from marketdata.providers.simulator import SimulatorProvider
from tests.plugins.simulator import trading_soon


def _minute_floor(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def _window(hours: int = 10) -> tuple[datetime, datetime]:
    end = _minute_floor(datetime.now(UTC)) - timedelta(minutes=5)
    return end - timedelta(hours=hours), end


def _all(pages) -> list[BarEvent]:
    return [bar for page in pages for bar in page]


def test_alpaca_history_pages_through_the_simulator(simulator_settings):
    start, end = _window(10)
    small = SimulatorProvider(page_limit=250)
    pages = list(small.fetch_bars(symbol="AAPL", start=start, end=end))
    bars = _all(pages)
    assert len(bars) == 600  # hours "always": every minute trades
    assert len(pages) == 3 and small.http.requests_made == 3
    assert [b.ts for b in bars] == [start + timedelta(minutes=i) for i in range(600)]
    assert all(b.provider == "simulator" and b.timeframe == "1m" for b in bars)
    assert all(
        b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars
    )
    # the same range in one page gives the same bars
    assert (
        _all(SimulatorProvider().fetch_bars(symbol="AAPL", start=start, end=end))
        == bars
    )


def test_alpaca_crypto_and_daily_history(simulator_settings):
    start, end = _window(3)
    bars = _all(
        SimulatorProvider(page_limit=100).fetch_bars(
            symbol="BTC/USD", start=start, end=end
        )
    )
    assert len(bars) == 180 and bars[0].symbol == "BTC/USD"
    assert any(b.volume != b.volume.to_integral_value() for b in bars)  # fractional
    day_end = datetime.now(UTC) - timedelta(days=1)
    daily = _all(
        SimulatorProvider().fetch_bars(
            symbol="SPY",
            start=day_end - timedelta(days=30),
            end=day_end,
            timeframe="1d",
        )
    )
    assert daily and all(b.timeframe == "1d" for b in daily)
    assert len({b.ts for b in daily}) == len(daily)


def test_alpaca_history_survives_injected_429_and_500(simulator_settings):
    start, end = _window(10)
    clean = _all(
        SimulatorProvider(page_limit=50).fetch_bars(symbol="MSFT", start=start, end=end)
    )
    simulator_settings.faults.update(
        rest_429_rate=0.5, rest_500_rate=0.3, retry_after=0
    )
    flaky = SimulatorProvider(page_limit=50, max_retries=20, backoff=0.01)
    bars = _all(flaky.fetch_bars(symbol="MSFT", start=start, end=end))
    assert bars == clean
    assert flaky.http.retries_made > 0


def test_alpaca_wrong_keys_fail_like_alpaca(simulator_settings):
    start, end = _window(1)
    wrong = AlpacaProvider(key_id="WRONG", secret="nope")
    with pytest.raises(AuthenticationError) as info:
        list(wrong.fetch_bars(symbol="AAPL", start=start, end=end))
    assert info.value.status == 403 and "nope" not in str(info.value)


def _read_until(ws, provider, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        events = provider.parse_frame(frame)
        seen.extend(events)
        if predicate(seen):
            return seen
    raise AssertionError(f"condition not met; saw {seen[-5:]}")


@pytest.mark.parametrize("use_msgpack", [False, True])
def test_alpaca_stream_session(simulator_settings, use_msgpack):
    simulator_settings.clock.set(start=trading_soon("AAPL"))
    p = SimulatorProvider(use_msgpack=use_msgpack)
    ws = websocket.create_connection(
        p.stream_url(asset_class="equity"), header=p.stream_headers(), timeout=10
    )
    try:
        (c,) = _read_until(ws, p, lambda s: s)
        assert c.type is ControlType.CONNECTED
        for message in p.auth_messages():
            ws.send(message)
        (c,) = _read_until(ws, p, lambda s: s)
        assert c.type is ControlType.AUTHENTICATED
        for message in p.subscribe_messages(["AAPL", "MSFT"]):
            ws.send(message)
        events = _read_until(
            ws,
            p,
            lambda s: (
                any(isinstance(e, Trade) for e in s)
                and any(isinstance(e, Quote) for e in s)
            ),
        )
    finally:
        ws.close()
    sub = [
        e for e in events if isinstance(e, Control) and e.type is ControlType.SUBSCRIBED
    ]
    assert sub and set(sub[0].symbols) == {"AAPL", "MSFT"}
    assert not [
        e for e in events if isinstance(e, Control) and e.type is ControlType.MALFORMED
    ]
    trades = [e for e in events if isinstance(e, Trade)]
    assert {t.symbol for t in trades} <= {"AAPL", "MSFT"} and trades[0].trade_id


def test_alpaca_stream_rejected_auth(simulator_settings):
    simulator_settings.faults.update(reject_auth=True)
    p = SimulatorProvider()
    ws = websocket.create_connection(p.stream_url(asset_class="equity"), timeout=10)
    try:
        _read_until(ws, p, lambda s: s)
        for message in p.auth_messages():
            ws.send(message)
        events = _read_until(
            ws, p, lambda s: any(e.type is ControlType.AUTH_FAILED for e in s)
        )
    finally:
        ws.close()
    (failed,) = [e for e in events if e.type is ControlType.AUTH_FAILED]
    assert failed.code == 402


def test_alpaca_crypto_stream(simulator_settings):
    simulator_settings.clock.set(start=trading_soon("BTC/USD"))
    p = SimulatorProvider()
    ws = websocket.create_connection(p.stream_url(asset_class="crypto"), timeout=10)
    try:
        _read_until(ws, p, lambda s: s)
        for message in p.auth_messages():
            ws.send(message)
        _read_until(ws, p, lambda s: s)
        for message in p.subscribe_messages(["BTC/USD"]):
            ws.send(message)
        events = _read_until(ws, p, lambda s: any(isinstance(e, Trade) for e in s))
    finally:
        ws.close()
    trade = next(e for e in events if isinstance(e, Trade))
    assert trade.symbol == "BTC/USD" and trade.exchange == ""


# --- Finnhub -----------------------------------------------------------------

FINNHUB_SYMBOLS = {"BTC/USD": "BINANCE:BTCUSDT"}


def _finnhub(**kwargs):
    from django.conf import settings

    from marketdata.providers.finnhub import FinnhubProvider

    kwargs.setdefault("token", settings.SIMULATOR_FINNHUB_TOKEN)
    return FinnhubProvider(symbols=FINNHUB_SYMBOLS, **kwargs)


def test_finnhub_quote_search_and_unknown_symbol(simulator_settings):
    from marketdata.providers.base import UnknownSymbolError

    p = _finnhub()
    quote = p.quote(symbol="AAPL")
    assert quote.previous_close > 0 and quote.price > 0 and quote.ts is not None
    assert any(m.symbol == "AAPL" for m in p.search(query="apple"))
    with pytest.raises(UnknownSymbolError):
        p.quote(symbol="NOSUCH")
    with pytest.raises(AuthenticationError):
        _finnhub(token="wrong-token").quote(symbol="AAPL")


def test_finnhub_candles_minutes_and_days(simulator_settings):
    start, end = _window(4)
    p = _finnhub()
    bars = _all(p.fetch_bars(symbol="AAPL", start=start, end=end))
    assert [b.ts for b in bars] == [start + timedelta(minutes=i) for i in range(240)]
    assert all(b.provider == "finnhub" for b in bars)
    day_end = _minute_floor(datetime.now(UTC)).replace(hour=0, minute=0)
    pages = list(
        p.fetch_bars(
            symbol="SPY",
            start=day_end - timedelta(days=800),
            end=day_end,
            timeframe="1d",
        )
    )
    assert len(pages) >= 2 and p.http.requests_made >= 4  # yearly windows
    days = _all(pages)
    assert len({b.ts for b in days}) == len(days) and days == sorted(
        days, key=lambda b: b.ts
    )


def test_finnhub_candles_retry_injected_faults(simulator_settings):
    start, end = _window(2)
    clean = _all(_finnhub().fetch_bars(symbol="MSFT", start=start, end=end))
    simulator_settings.faults.update(
        rest_429_rate=0.5, rest_500_rate=0.3, retry_after=0
    )
    flaky = _finnhub(max_retries=20, backoff=0.01)
    assert _all(flaky.fetch_bars(symbol="MSFT", start=start, end=end)) == clean


def test_finnhub_stream_session(simulator_settings):
    simulator_settings.clock.set(start=trading_soon("AAPL", "BTC/USD"))
    p = _finnhub()
    ws = websocket.create_connection(p.stream_url(asset_class="equity"), timeout=10)
    try:
        # An equity's simulated trades pause for 10-20 s at times: trades of
        # any of four (each its own trade process) and of the crypto pair.
        equities = {"AAPL", "MSFT", "NVDA", "SPY"}
        for message in p.subscribe_messages([*sorted(equities), "BTC/USD"]):
            ws.send(message)
        events = _read_until(
            ws,
            p,
            lambda s: (
                "BTC/USD" in (traded := {e.symbol for e in s if isinstance(e, Trade)})
                and traded & equities
            ),
        )
    finally:
        ws.close()
    assert not [
        e for e in events if isinstance(e, Control) and e.type is ControlType.MALFORMED
    ]
    assert all(e.provider == "finnhub" for e in events)


def test_finnhub_stream_wrong_token_fails_the_upgrade(simulator_settings):
    p = _finnhub(token="wrong-token")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(p.stream_url(asset_class="equity"), timeout=10)
    assert info.value.status_code == 401


# --- Binance -----------------------------------------------------------------

BINANCE_SYMBOLS = {"BTC/USD": "BTCUSDT", "ETH/USD": "ETHUSDT"}


def _binance(**kwargs):
    from marketdata.providers.binance import BinanceProvider

    return BinanceProvider(symbols=BINANCE_SYMBOLS, **kwargs)


def test_binance_klines_page_in_windows_of_1000(simulator_settings):
    end = _minute_floor(datetime.now(UTC)) - timedelta(minutes=2)
    start = end - timedelta(minutes=2300)
    p = _binance()
    pages = list(p.fetch_bars(symbol="BTC/USD", start=start, end=end))
    assert [len(page) for page in pages] == [1000, 1000, 300]
    bars = _all(pages)
    assert [b.ts for b in bars] == [start + timedelta(minutes=i) for i in range(2300)]
    assert all(
        b.vwap is not None and b.low <= b.vwap <= b.high for b in bars if b.volume
    )


def test_binance_klines_drop_open_candle_and_errors(simulator_settings):
    from marketdata.providers.base import UnknownSymbolError

    now = datetime.now(UTC)
    p = _binance()
    bars = _all(
        p.fetch_bars(
            symbol="ETH/USD",
            start=now - timedelta(minutes=30),
            end=now + timedelta(minutes=5),
        )
    )
    assert bars and bars[-1].ts + timedelta(minutes=1) <= datetime.now(UTC)
    with pytest.raises(UnknownSymbolError):
        list(p.fetch_bars(symbol="NOPEUSDT", start=now - timedelta(hours=1), end=now))
    daily = _all(
        p.fetch_bars(
            symbol="BTC/USD", start=now - timedelta(days=40), end=now, timeframe="1d"
        )
    )
    assert daily and all(b.ts.hour == 0 and b.timeframe == "1d" for b in daily)


def test_binance_klines_retry_injected_faults(simulator_settings):
    end = _minute_floor(datetime.now(UTC)) - timedelta(minutes=2)
    start = end - timedelta(minutes=1500)
    clean = _all(_binance().fetch_bars(symbol="BTC/USD", start=start, end=end))
    simulator_settings.faults.update(
        rest_429_rate=0.5, rest_500_rate=0.3, retry_after=0
    )
    flaky = _binance(max_retries=20, backoff=0.01)
    assert _all(flaky.fetch_bars(symbol="BTC/USD", start=start, end=end)) == clean
    assert flaky.http.retries_made > 0


def test_binance_combined_stream_and_live_subscribe(simulator_settings):
    simulator_settings.clock.set(start=trading_soon("BTC/USD"))
    p = _binance()
    ws = websocket.create_connection(
        p.stream_url(asset_class="crypto", symbols=["BTC/USD"]), timeout=10
    )
    try:
        handshake = p.handshake_events()
        assert handshake[-1].symbols == ("BTC/USD",)
        for message in p.subscribe_messages(["ETH/USD"]):
            ws.send(message)
        events = _read_until(
            ws,
            p,
            lambda s: (
                any(
                    isinstance(e, Control) and e.type is ControlType.SUBSCRIBED
                    for e in s
                )
                # ETH trades are sparse in the simulator: any ETH event
                # proves the live SUBSCRIBE took effect
                and any(isinstance(e, Trade) for e in s)
                and {getattr(e, "symbol", None) for e in s} >= {"BTC/USD", "ETH/USD"}
                and any(isinstance(e, Quote) for e in s)
            ),
            timeout=30,
        )
    finally:
        ws.close()
    ack = next(
        e for e in events if isinstance(e, Control) and e.type is ControlType.SUBSCRIBED
    )
    assert ack.symbols == ("BTC/USD", "ETH/USD")
    assert not [
        e for e in events if isinstance(e, Control) and e.type is ControlType.MALFORMED
    ]
    trade = next(e for e in events if isinstance(e, Trade))
    assert trade.trade_id and trade.price > 0
