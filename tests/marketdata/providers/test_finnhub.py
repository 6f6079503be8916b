from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from marketdata.events import Control, ControlType, Trade
from marketdata.providers.base import (
    AuthenticationError,
    RateLimitedError,
    UnknownSymbolError,
)
from marketdata.providers.finnhub import FinnhubProvider
from tests.marketdata.providers.conftest import fixture_json, fixture_text
from tests.marketdata.providers.loopback import LoopbackServer

SYMBOLS = {"BTC/USD": "BINANCE:BTCUSDT", "EUR/USD": "OANDA:EUR_USD"}


def provider(**kwargs) -> FinnhubProvider:
    kwargs.setdefault("token", "fh-secret-token")
    return FinnhubProvider(symbols=SYMBOLS, **kwargs)


def test_stream_url_and_messages(settings):
    settings.FINNHUB_STREAM_URL = "wss://ws.finnhub.io"
    p = provider()
    assert (
        p.stream_url(asset_class="equity")
        == "wss://ws.finnhub.io?token=fh-secret-token"
    )
    assert p.auth_messages() == []
    assert [c.type for c in p.handshake_events()] == [
        ControlType.CONNECTED,
        ControlType.AUTHENTICATED,
    ]
    msgs = [orjson.loads(m) for m in p.subscribe_messages(["AAPL", "BTC/USD"])]
    assert msgs == [
        {"type": "subscribe", "symbol": "AAPL"},
        {"type": "subscribe", "symbol": "BINANCE:BTCUSDT"},
    ]
    (unsub,) = (orjson.loads(m) for m in p.unsubscribe_messages(["BTC/USD"]))
    assert unsub == {"type": "unsubscribe", "symbol": "BINANCE:BTCUSDT"}
    assert "fh-secret" not in repr(p)


def test_trade_batch_mixed_symbols_optional_conditions():
    events = provider().parse_frame(fixture_text("finnhub", "trades_batch.json"))
    assert all(isinstance(e, Trade) for e in events) and len(events) == 5
    tsla, tsla2, btc, eur, aapl = events
    assert tsla.symbol == "TSLA" and tsla.conditions == ("1", "12")
    assert tsla.ts == datetime(2022, 12, 29, 21, 21, 27, 195000, tzinfo=UTC)
    assert tsla2.size == Decimal(37) and tsla2.price == Decimal("122.12")
    assert btc.symbol == "BTC/USD" and btc.conditions == ()
    assert btc.size == Decimal("0.00124") and btc.price == Decimal("16525.37")
    assert eur.symbol == "EUR/USD" and eur.size == 0 and eur.price == Decimal("1.07113")
    assert aapl.trade_id is None and aapl.provider == "finnhub"


def test_ping_errors_and_other_types():
    p = provider()
    (ping,) = p.parse_frame(fixture_text("finnhub", "ping.json"))
    assert ping.type is ControlType.PING and ping.reply is None
    p.subscribe_messages(["AAPL", "BTC/USD"])
    (err,) = p.parse_frame(fixture_text("finnhub", "error_too_many.json"))
    assert err.type is ControlType.SUBSCRIPTION_ERROR
    assert err.message == "Subscribing to too many symbols"
    # The plan's cap: no symbol is named (so none is marked invalid).
    assert err.reason == "plan_limit" and err.symbols == ()
    p.subscribe_messages(["BADSYM"])
    (err,) = p.parse_frame(fixture_text("finnhub", "error_invalid_symbol.json"))
    assert err.type is ControlType.SUBSCRIPTION_ERROR and err.symbols == ("BADSYM",)
    assert err.reason == "unknown_symbol"
    (err,) = p.parse_frame('{"type":"error","msg":"Invalid symbol"}')
    assert err.reason == "invalid_request" and err.symbols == ()
    (err,) = p.parse_frame(fixture_text("finnhub", "error_server.json"))
    assert err.type is ControlType.ERROR and err.reason == ""
    assert p.parse_frame(fixture_text("finnhub", "news.json")) == []


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "[]",
        "null",
        '{"data":[]}',
        '{"type":"trade"}',
        '{"type":"trade","data":{}}',
        '{"type":"trade","data":[{"p":1,"s":"X","t":"soon","v":1}]}',
        '{"type":"trade","data":[{"p":1,"t":1672348887195,"v":1}]}',
        b"\xff\xfe",
    ],
)
def test_malformed(frame):
    events = provider().parse_frame(frame)
    assert events and all(
        isinstance(e, Control) and e.type is ControlType.MALFORMED for e in events
    )


def _serve(routes):
    def handler(path, query, headers):
        reply = routes[path]
        return reply(query) if callable(reply) else reply

    return LoopbackServer(handler)


def test_quote_previous_close_and_token():
    with _serve(
        {"/api/v1/quote": (200, {}, fixture_json("finnhub", "rest/quote.json"))}
    ) as s:
        q = provider(api_url=s.url + "/api/v1").quote(symbol="AAPL")
    assert q.previous_close == Decimal("259.45") and q.price == Decimal("261.74")
    assert q.ts == datetime(2020, 2, 25, 14, 30, tzinfo=UTC)
    assert s.requests[0].query == {"symbol": "AAPL"}  # the key is not in the URL
    assert s.requests[0].headers["x-finnhub-token"] == "fh-secret-token"


def test_quote_all_zero_is_unknown_symbol():
    with _serve(
        {"/api/v1/quote": (200, {}, fixture_json("finnhub", "rest/quote_unknown.json"))}
    ) as s:
        with pytest.raises(UnknownSymbolError):
            provider(api_url=s.url + "/api/v1").quote(symbol="NOPE")


def test_search():
    with _serve(
        {"/api/v1/search": (200, {}, fixture_json("finnhub", "rest/search.json"))}
    ) as s:
        matches = provider(api_url=s.url + "/api/v1").search(query="apple")
    assert [m.symbol for m in matches] == ["AAPL", "APLE"]
    assert matches[0].description == "APPLE INC" and s.requests[0].query["q"] == "apple"


def test_candles_daily_and_windows():
    def candles(query):
        if int(query["from"]) < 1569297600 < int(query["to"]):
            return 200, {}, fixture_json("finnhub", "rest/candles_daily.json")
        return 200, {}, fixture_json("finnhub", "rest/candles_no_data.json")

    with _serve({"/api/v1/stock/candle": candles}) as s:
        p = provider(api_url=s.url + "/api/v1")
        pages = list(
            p.fetch_bars(
                symbol="AAPL",
                start=datetime(2019, 1, 1, tzinfo=UTC),
                end=datetime(2021, 1, 1, tzinfo=UTC),
                timeframe="1d",
            )
        )
    assert len(pages) == 1 and [b.close for b in pages[0]] == [
        Decimal("217.68"),
        Decimal("221.03"),
        Decimal("219.89"),
    ]
    assert pages[0][0].ts == datetime(2019, 9, 24, 4, tzinfo=UTC)
    assert len(s.requests) == 3  # yearly windows
    assert all(r.query["resolution"] == "D" for r in s.requests)


def test_crypto_candles_use_crypto_path():
    with _serve({"/api/v1/crypto/candle": (200, {}, {"s": "no_data"})}) as s:
        start = datetime(2024, 1, 1, tzinfo=UTC)
        p = provider(api_url=s.url + "/api/v1")
        assert (
            list(p.fetch_bars(symbol="BTC/USD", start=start, end=start.replace(day=2)))
            == []
        )
    assert s.requests[0].query["symbol"] == "BINANCE:BTCUSDT"
    assert s.requests[0].query["resolution"] == "1"


def test_candles_premium_403_is_permanent_with_finnhub_message():
    reply = (403, {}, fixture_json("finnhub", "rest/candles_premium.json"))
    with _serve({"/api/v1/stock/candle": reply}) as s:
        start = datetime(2024, 1, 1, tzinfo=UTC)
        with pytest.raises(AuthenticationError) as info:
            list(
                provider(api_url=s.url + "/api/v1").fetch_bars(
                    symbol="AAPL", start=start, end=start.replace(day=2)
                )
            )
    assert "You don't have access to this resource." in str(info.value)
    assert "fh-secret-token" not in str(info.value) and info.value.permanent


def test_429_api_limit_then_ok():
    calls = []

    def quote(query):
        calls.append(1)
        if len(calls) == 1:
            return (
                429,
                {},
                {
                    "error": "API limit reached. Please try again later. Remaining Limit: 0"
                },
            )
        return 200, {}, fixture_json("finnhub", "rest/quote.json")

    with _serve({"/api/v1/quote": quote}) as s:
        p = provider(api_url=s.url + "/api/v1", backoff=0.01)
        slept: list[float] = []
        p.http.sleep = slept.append
        assert p.quote(symbol="AAPL").previous_close == Decimal("259.45")
    assert len(slept) == 1


def test_429_forever_raises_rate_limited():
    reply = (429, {}, {"error": "API limit reached."})
    with _serve({"/api/v1/quote": reply}) as s:
        p = provider(api_url=s.url + "/api/v1", max_retries=1)
        p.http.sleep = lambda _: None
        with pytest.raises(RateLimitedError) as info:
            p.quote(symbol="AAPL")
    assert "API limit reached." in str(info.value)
