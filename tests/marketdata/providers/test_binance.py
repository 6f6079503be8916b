from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from marketdata.events import BarEvent, ControlType, Quote, Trade
from marketdata.providers.base import (
    InvalidRequestError,
    ProviderError,
    RateLimitedError,
    UnknownSymbolError,
)
from marketdata.providers.binance import BinanceProvider
from marketdata.providers.timeparse import to_epoch_ms
from tests.marketdata.providers.conftest import fixture_json, fixture_text
from tests.marketdata.providers.loopback import LoopbackServer

SYMBOLS = {"BTC/USD": "BTCUSDT", "ETH/USD": "ETHUSDT", "SOL/USD": "SOLUSDT"}
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def provider(**kwargs) -> BinanceProvider:
    return BinanceProvider(symbols=SYMBOLS, **kwargs)


def test_combined_stream_url_lowercase(settings):
    settings.BINANCE_STREAM_URL = "wss://data-stream.binance.vision"
    p = provider()
    assert p.stream_url(asset_class="crypto", symbols=["BTC/USD", "ETH/USD"]) == (
        "wss://data-stream.binance.vision/stream?streams="
        "btcusdt@trade/btcusdt@kline_1m/btcusdt@bookTicker/"
        "ethusdt@trade/ethusdt@kline_1m/ethusdt@bookTicker"
    )
    events = p.handshake_events()
    assert [e.type for e in events] == [
        ControlType.CONNECTED,
        ControlType.AUTHENTICATED,
        ControlType.SUBSCRIBED,
    ]
    assert events[-1].symbols == ("BTC/USD", "ETH/USD")
    assert (
        p.stream_url(asset_class="crypto") == "wss://data-stream.binance.vision/stream"
    )


def test_live_subscribe_unsubscribe_and_acks():
    p = provider()
    p.stream_url(asset_class="crypto", symbols=["BTC/USD"])
    p.handshake_events()
    (sub,) = (orjson.loads(m) for m in p.subscribe_messages(["ETH/USD", "SOL/USD"]))
    assert sub["method"] == "SUBSCRIBE" and isinstance(sub["id"], int)
    assert sub["params"] == [
        "ethusdt@trade",
        "ethusdt@kline_1m",
        "ethusdt@bookTicker",
        "solusdt@trade",
        "solusdt@kline_1m",
        "solusdt@bookTicker",
    ]
    (ack,) = p.parse_frame(orjson.dumps({"result": None, "id": sub["id"]}))
    assert ack.type is ControlType.SUBSCRIBED
    assert set(ack.symbols) == {"BTC/USD", "ETH/USD", "SOL/USD"}
    (unsub,) = (orjson.loads(m) for m in p.unsubscribe_messages(["BTC/USD"]))
    assert unsub["method"] == "UNSUBSCRIBE" and unsub["id"] > sub["id"]
    (ack,) = p.parse_frame(orjson.dumps({"result": None, "id": unsub["id"]}))
    assert set(ack.symbols) == {"ETH/USD", "SOL/USD"}


def test_subscribe_errors():
    p = provider()
    (sub,) = (orjson.loads(m) for m in p.subscribe_messages(["BTC/USD"]))
    assert sub["id"] == 1
    (err,) = p.parse_frame(fixture_text("binance", "error_too_many.json"))
    assert err.type is ControlType.SUBSCRIPTION_ERROR and err.code == 4
    assert err.symbols == ("BTC/USD",) and err.message == "Too many subscriptions"
    assert err.reason == "plan_limit"
    (sub,) = (orjson.loads(m) for m in p.subscribe_messages(["ETH/USD"]))
    bad_value = {
        "error": {"code": 1, "msg": "Invalid value type: expected Vec<String>"},
        "id": sub["id"],
    }
    (err,) = p.parse_frame(orjson.dumps(bad_value))
    assert err.type is ControlType.SUBSCRIPTION_ERROR
    assert err.reason == "invalid_request" and err.symbols == ("ETH/USD",)
    (err,) = p.parse_frame(fixture_text("binance", "error_nested.json"))
    assert err.type is ControlType.ERROR and err.code == 2  # id 1 already answered
    (err,) = p.parse_frame(fixture_text("binance", "error_flat_noid.json"))
    assert err.type is ControlType.ERROR and err.code == 3


def test_list_subscriptions_result():
    (c,) = provider().parse_frame(fixture_text("binance", "list_subscriptions.json"))
    assert c.type is ControlType.SUBSCRIBED and c.symbols == ("BTC/USD", "ETH/USD")


def test_trades_ms_and_us():
    (t,) = provider().parse_frame(fixture_text("binance", "trade_combined.json"))
    assert isinstance(t, Trade) and t.symbol == "BTC/USD"
    assert t.price == Decimal("16540.01000000") and str(t.size) == "0.00123000"
    assert t.trade_id == "12345678901"
    assert t.ts == datetime(2022, 12, 31, 19, 43, 2, 134000, tzinfo=UTC)
    (t,) = provider().parse_frame(fixture_text("binance", "trade_raw_us.json"))
    assert t.symbol == "ETH/USD" and t.ts.microsecond == 134567
    (a,) = provider().parse_frame(fixture_text("binance", "aggtrade_combined.json"))
    assert a.trade_id == "26129" and a.price == Decimal("0.01633102")


def test_klines_open_and_closed():
    (open_bar,) = provider().parse_frame(fixture_text("binance", "kline_open.json"))
    (closed,) = provider().parse_frame(fixture_text("binance", "kline_closed.json"))
    assert isinstance(open_bar, BarEvent) and open_bar.closed is False
    assert closed.closed is True and closed.ts == open_bar.ts
    assert closed.ts == datetime(2022, 12, 31, 19, 43, tzinfo=UTC)
    assert closed.timeframe == "1m" and closed.trade_count == 161
    assert closed.volume == Decimal("20.00000000")
    assert closed.vwap == Decimal("16541.00000000")  # quote volume / volume


def test_book_ticker_uses_receive_time():
    (q,) = provider().parse_frame(
        fixture_text("binance", "book_ticker_combined.json"), RECEIVED
    )
    assert isinstance(q, Quote) and q.ts == RECEIVED
    assert q.bid_price == Decimal("16540.01000000") and q.ask_size == Decimal(
        "40.66000000"
    )
    (q,) = provider(clock=lambda: RECEIVED).parse_frame(
        fixture_text("binance", "book_ticker_combined.json")
    )
    assert q.ts == RECEIVED


def test_server_shutdown_and_ignored_streams():
    for name in ("server_shutdown.json", "server_shutdown_raw.json"):
        (c,) = provider().parse_frame(fixture_text("binance", name))
        assert c.type is ControlType.SERVER_SHUTDOWN
    assert provider().parse_frame(fixture_text("binance", "depth_partial.json")) == []
    assert provider().parse_frame('{"e":"24hrTicker","s":"BTCUSDT"}') == []


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "[]",
        "[1]",
        "{}",
        '{"stream":"x","data":5}',
        '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":16540.01,"q":"1","T":1672515782134}}',
        '{"e":"trade","s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1672515782134}',
        '{"e":"kline","s":"BTCUSDT","k":{"t":1,"i":"1m","o":"1","h":"1","l":"1","c":"1","v":"1","x":"yes"}}',
        '{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":"now"}',
    ],
)
def test_malformed(frame):
    events = provider().parse_frame(frame)
    assert len(events) == 1 and events[0].type is ControlType.MALFORMED


# --- REST klines -------------------------------------------------------------


def _rows(start_ms: int, count: int, step_ms: int = 60_000) -> list[list]:
    rows = []
    for i in range(count):
        t = start_ms + i * step_ms
        close = f"{100 + i / 100:.8f}"
        rows.append(
            [
                t,
                "100.00000000",
                "101.00000000",
                "99.00000000",
                close,
                "2.00000000",
                t + step_ms - 1,
                "200.50000000",
                7,
                "1.00000000",
                "100.25000000",
                "0",
            ]
        )
    return rows


class KlineServer:
    """Serves klines for [origin, origin + total minutes) like Binance does:
    from startTime, at most `limit` rows, never past endTime."""

    def __init__(self, origin: datetime, total: int):
        self.origin_ms = to_epoch_ms(origin)
        self.rows = _rows(self.origin_ms, total)

    def __call__(self, path, query, headers):
        assert path == "/api/v3/klines"
        if query["symbol"] != "BTCUSDT":
            return 400, {}, fixture_json("binance", "rest/error_invalid_symbol.json")
        start, end = int(query["startTime"]), int(query["endTime"])
        limit = int(query["limit"])
        rows = [r for r in self.rows if start <= r[0] <= end][:limit]
        return 200, {"X-MBX-USED-WEIGHT-1M": "2"}, rows


def test_klines_paginate_in_windows_of_1000():
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    with LoopbackServer(KlineServer(origin, 2500)) as s:
        p = provider(api_url=s.url)
        pages = list(
            p.fetch_bars(
                symbol="BTC/USD", start=origin, end=origin + timedelta(minutes=2500)
            )
        )
    assert [len(page) for page in pages] == [1000, 1000, 500]
    bars = [b for page in pages for b in page]
    assert bars[0].ts == origin and bars[-1].ts == origin + timedelta(minutes=2499)
    assert len({b.ts for b in bars}) == 2500
    assert bars[1].close == Decimal("100.01000000") and bars[0].trade_count == 7
    assert bars[0].vwap == Decimal("100.25000000")
    starts = [int(r.query["startTime"]) for r in s.requests]
    assert starts == [to_epoch_ms(origin) + n * 60_000 for n in (0, 1000, 2000)]
    assert all(
        r.query["interval"] == "1m" and r.query["limit"] == "1000" for r in s.requests
    )


def test_klines_drop_the_still_open_candle():
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    now = origin + timedelta(minutes=10, seconds=30)
    with LoopbackServer(KlineServer(origin, 11)) as s:
        p = provider(api_url=s.url, clock=lambda: now)
        (page,) = p.fetch_bars(
            symbol="BTC/USD", start=origin, end=origin + timedelta(hours=1)
        )
    assert len(page) == 10 and page[-1].ts == origin + timedelta(minutes=9)


def test_unknown_symbol_and_illegal_characters():
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    with LoopbackServer(KlineServer(origin, 1)) as s:
        with pytest.raises(UnknownSymbolError):
            list(
                provider(api_url=s.url).fetch_bars(
                    symbol="NOPEUSDT", start=origin, end=origin + timedelta(minutes=5)
                )
            )

    reply = (400, {}, fixture_json("binance", "rest/error_illegal_chars.json"))
    with LoopbackServer(lambda *a: reply) as s:
        with pytest.raises(InvalidRequestError) as info:
            list(
                provider(api_url=s.url).fetch_bars(
                    symbol="btc usdt", start=origin, end=origin + timedelta(minutes=5)
                )
            )
    assert "Illegal characters" in str(info.value) and info.value.permanent


def test_429_retry_after_then_418_ban_too_long():
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    klines = KlineServer(origin, 3)
    calls = []

    def handler(path, query, headers):
        calls.append(1)
        if len(calls) == 1:
            return (
                429,
                {"Retry-After": "3"},
                {"code": -1003, "msg": "Too much request weight used"},
            )
        return klines(path, query, headers)

    with LoopbackServer(handler) as s:
        p = provider(api_url=s.url)
        slept: list[float] = []
        p.http.sleep = slept.append
        (page,) = p.fetch_bars(
            symbol="BTC/USD", start=origin, end=origin + timedelta(minutes=3)
        )
    assert len(page) == 3 and slept == [3.0]

    ban = (
        418,
        {"Retry-After": "7200"},
        fixture_json("binance", "rest/error_banned.json"),
    )
    with LoopbackServer(lambda *a: ban) as s:
        p = provider(api_url=s.url)
        p.http.sleep = lambda _: pytest.fail("must not sleep through a 2-hour ban")
        with pytest.raises(RateLimitedError) as info:
            list(
                p.fetch_bars(
                    symbol="BTC/USD", start=origin, end=origin + timedelta(minutes=3)
                )
            )
    assert info.value.retry_after == 7200 and info.value.status == 418
    assert len(s.requests) == 1


def test_5xx_then_ok_and_persistent_5xx():
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    klines = KlineServer(origin, 2)
    calls = []

    def flaky(path, query, headers):
        calls.append(1)
        if len(calls) <= 2:
            return 503, {}, "Service Unavailable"
        return klines(path, query, headers)

    with LoopbackServer(flaky) as s:
        p = provider(api_url=s.url, backoff=0.01)
        (page,) = p.fetch_bars(
            symbol="BTC/USD", start=origin, end=origin + timedelta(minutes=2)
        )
    assert len(page) == 2 and len(s.requests) == 3

    with LoopbackServer(lambda *a: (502, {}, "Bad Gateway")) as s:
        p = provider(api_url=s.url, backoff=0.001, max_retries=2)
        with pytest.raises(ProviderError) as info:
            list(
                p.fetch_bars(
                    symbol="BTC/USD", start=origin, end=origin + timedelta(minutes=2)
                )
            )
    assert (
        info.value.status == 502 and not info.value.permanent and len(s.requests) == 3
    )
