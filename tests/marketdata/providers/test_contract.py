"""One contract for every streaming provider, used only through the
`Provider` interface the way the stream worker and history loader use it,
against the simulator on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import websocket

from marketdata.events import BarEvent, Control, ControlType, Trade
from marketdata.providers import provider_class
from tests.plugins.simulator import trading_soon

CASES = {
    # name: (asset class, symbols, canonical -> provider mapping)
    "simulator": ("equity", ["AAPL", "MSFT"], {}),
    "alpaca": (
        "crypto",
        ["BTC/USD", "ETH/USD"],
        {"BTC/USD": "BTC/USD", "ETH/USD": "ETH/USD"},
    ),
    "finnhub": ("equity", ["AAPL", "BTC/USD"], {"BTC/USD": "BINANCE:BTCUSDT"}),
    "binance": (
        "crypto",
        ["BTC/USD", "ETH/USD"],
        {"BTC/USD": "BTCUSDT", "ETH/USD": "ETHUSDT"},
    ),
}


def build(name: str, sim, mapping):
    options = {}
    if name == "alpaca":  # the real adapter, given the simulator's keys
        options = {"key_id": sim.key_id, "secret": sim.secret}
    if name == "finnhub":
        options = {"token": sim.finnhub_token}
    return provider_class(name)(symbols=mapping, **options)


@pytest.mark.parametrize("name", CASES)
def test_stream_contract(simulator_settings, name):
    asset_class, symbols, mapping = CASES[name]
    # Each symbol's trades come within seconds, whatever the hour of the run.
    simulator_settings.clock.set(start=trading_soon(*symbols))
    provider = build(name, simulator_settings, mapping)
    assert asset_class in provider.asset_classes
    ws = websocket.create_connection(
        provider.stream_url(asset_class=asset_class, symbols=symbols[:1]),
        header=provider.stream_headers(),
        timeout=10,
    )
    events = []
    try:
        auth = provider.auth_messages()
        for message in auth:
            ws.send(message)
        events.extend(provider.handshake_events())
        subscribed_by_url = {
            s
            for e in events
            if e.kind == "control" and e.type is ControlType.SUBSCRIBED
            for s in e.symbols
        }
        authenticated = any(
            e.kind == "control" and e.type is ControlType.AUTHENTICATED for e in events
        )
        # Generous: it ends as soon as every symbol has traded.
        deadline = time.monotonic() + 60
        sent_subscribe = False
        while time.monotonic() < deadline:
            if authenticated and not sent_subscribe:
                for message in provider.subscribe_messages(
                    [s for s in symbols if s not in subscribed_by_url]
                ):
                    ws.send(message)
                sent_subscribe = True
            ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            got = provider.parse_frame(frame)
            events.extend(got)
            authenticated = authenticated or any(
                e.kind == "control" and e.type is ControlType.AUTHENTICATED for e in got
            )
            seen = {e.symbol for e in events if e.kind != "control"}
            if seen >= set(symbols) and any(isinstance(e, Trade) for e in events):
                break
    finally:
        ws.close()
    market = [e for e in events if e.kind != "control"]
    assert {e.symbol for e in market} == set(symbols)  # canonical symbols only
    assert all(e.provider == name and e.ts.tzinfo is UTC for e in market)
    trades = [e for e in market if isinstance(e, Trade)]
    assert trades and all(t.price > 0 for t in trades)
    assert not [
        e for e in events if isinstance(e, Control) and e.type is ControlType.MALFORMED
    ]
    errors = [
        e
        for e in events
        if isinstance(e, Control)
        and e.type
        in (ControlType.ERROR, ControlType.AUTH_FAILED, ControlType.SUBSCRIPTION_ERROR)
    ]
    assert errors == []


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("timeframe", ["1m", "1d"])
def test_history_contract(simulator_settings, name, timeframe):
    _, symbols, mapping = CASES[name]
    provider = build(name, simulator_settings, mapping)
    now = datetime.now(UTC)
    if timeframe == "1m":
        end = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
        start = end - timedelta(hours=3)
    else:
        end = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
        start = end - timedelta(days=60)
    calls = []
    provider.rate_limiter = lambda: calls.append(1)  # what the loader plugs in
    bars = [
        b
        for page in provider.fetch_bars(
            symbol=symbols[0], start=start, end=end, timeframe=timeframe
        )
        for b in page
    ]
    assert bars and len(calls) == provider.http.requests_made  # before every request
    assert all(isinstance(b, BarEvent) and b.timeframe == timeframe for b in bars)
    assert all(start <= b.ts < end and b.symbol == symbols[0] for b in bars)
    assert [b.ts for b in bars] == sorted({b.ts for b in bars})  # ascending, unique
    assert all(
        b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high for b in bars
    )
    if timeframe == "1m":  # simulator hours "always": every minute trades
        assert len(bars) == 180
