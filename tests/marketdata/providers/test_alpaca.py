from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgpack
import orjson
import pytest

from marketdata.events import BarEvent, Control, ControlType, Quote, Status, Trade
from marketdata.providers.alpaca import AlpacaProvider
from marketdata.providers.base import (
    AuthenticationError,
    ProviderError,
    RateLimitedError,
    UnknownSymbolError,
)
from marketdata.providers.simulator import SimulatorProvider
from tests.marketdata.providers.conftest import fixture_json, fixture_text
from tests.marketdata.providers.loopback import LoopbackServer

SYMBOLS = {"BTC/USD": "BTC/USD", "BRK.B": "BRK.B"}


def provider(**kwargs) -> AlpacaProvider:
    kwargs.setdefault("key_id", "AKTESTKEY")
    kwargs.setdefault("secret", "s3cr3t-value")
    return AlpacaProvider(symbols=SYMBOLS, **kwargs)


def controls(events, kind=None):
    return [
        e for e in events if isinstance(e, Control) and (kind is None or e.type is kind)
    ]


def test_stream_urls_and_messages(settings):
    settings.ALPACA_STREAM_URL = "wss://stream.data.alpaca.markets"
    p = provider(feed="sip")
    assert (
        p.stream_url(asset_class="equity") == "wss://stream.data.alpaca.markets/v2/sip"
    )
    assert (
        p.stream_url(asset_class="crypto")
        == "wss://stream.data.alpaca.markets/v1beta3/crypto/us"
    )
    assert orjson.loads(p.auth_messages()[0]) == {
        "action": "auth",
        "key": "AKTESTKEY",
        "secret": "s3cr3t-value",
    }
    stock, crypto = (orjson.loads(m) for m in p.subscribe_messages(["AAPL", "BTC/USD"]))
    assert stock == {
        "action": "subscribe",
        "trades": ["AAPL"],
        "quotes": ["AAPL"],
        "bars": ["AAPL"],
        "updatedBars": ["AAPL"],
        "statuses": ["AAPL"],
    }
    assert crypto["trades"] == ["BTC/USD"] and "statuses" not in crypto
    # statuses are only asked for where they surely exist (SIP-based feeds)
    (iex,) = (
        orjson.loads(m) for m in provider(feed="iex").subscribe_messages(["AAPL"])
    )
    assert "statuses" not in iex and iex["bars"] == ["AAPL"]
    (sim,) = (
        orjson.loads(m)
        for m in SimulatorProvider(feed="iex").subscribe_messages(["AAPL"])
    )
    assert sim["statuses"] == ["AAPL"]
    (unsub,) = (orjson.loads(m) for m in p.unsubscribe_messages(["MSFT"]))
    assert unsub["action"] == "unsubscribe" and unsub["bars"] == ["MSFT"]
    assert "s3cr3t" not in repr(p)


def test_channels_option_limits_subscription():
    p = provider(channels=["bars", "updatedBars"])
    (msg,) = (orjson.loads(m) for m in p.subscribe_messages(["AAPL"]))
    assert msg == {"action": "subscribe", "bars": ["AAPL"], "updatedBars": ["AAPL"]}


def test_control_messages():
    p = provider()
    (c,) = p.parse_frame(fixture_text("alpaca", "connected.json"))
    assert c.type is ControlType.CONNECTED
    (c,) = p.parse_frame(fixture_text("alpaca", "authenticated.json"))
    assert c.type is ControlType.AUTHENTICATED
    (c,) = p.parse_frame(fixture_text("alpaca", "subscription.json"))
    assert c.type is ControlType.SUBSCRIBED
    assert c.symbols == ("*", "AAPL", "AMD", "CLDR")


@pytest.mark.parametrize(
    "code,kind",
    [
        (400, ControlType.ERROR),
        (401, ControlType.ERROR),
        (402, ControlType.AUTH_FAILED),
        (403, ControlType.ERROR),
        (404, ControlType.ERROR),
        (405, ControlType.SUBSCRIPTION_ERROR),
        (406, ControlType.CONNECTION_LIMIT),
        (407, ControlType.ERROR),
        (408, ControlType.ERROR),
        (409, ControlType.AUTH_FAILED),
        (410, ControlType.SUBSCRIPTION_ERROR),
        (411, ControlType.AUTH_FAILED),
        (500, ControlType.ERROR),
    ],
)
def test_error_codes(code, kind):
    frames = {f[0]["code"]: f for f in fixture_json("alpaca", "errors.json")}
    (c,) = provider().parse_frame(orjson.dumps(frames[code]).decode())
    assert c.type is kind and c.code == code and c.message == frames[code][0]["msg"]


@pytest.mark.parametrize(
    "frame,reason",
    [
        ('[{"T":"error","code":405,"msg":"symbol limit exceeded"}]', "plan_limit"),
        (
            '[{"T":"error","code":410,"msg":"invalid subscribe action for this feed"}]',
            "invalid_request",
        ),
    ],
)
def test_subscription_errors_say_why(frame, reason):
    (c,) = provider().parse_frame(frame)
    assert c.type is ControlType.SUBSCRIPTION_ERROR and c.reason == reason
    assert c.symbols == ()  # Alpaca names no symbol: nothing to mark invalid
    (auth,) = provider().parse_frame('[{"T":"error","code":402,"msg":"auth failed"}]')
    assert auth.reason == ""


def test_batched_quotes_keep_nanosecond_order_and_precision():
    q1, q2 = provider().parse_frame(fixture_text("alpaca", "quotes_batch.json"))
    assert isinstance(q1, Quote) and isinstance(q2, Quote)
    assert q1.ts == datetime(2021, 2, 22, 15, 51, 45, 335567, tzinfo=UTC)
    assert q2.ts == datetime(2021, 2, 22, 15, 51, 45, 335689, tzinfo=UTC)
    assert q1.bid_price == Decimal("87.66") and str(q1.ask_price) == "87.67"
    assert (q2.ask_exchange, q2.ask_size, q2.bid_exchange) == ("Q", Decimal(4), "U")


def test_mixed_batch_ignores_corrections_cancels_and_luld():
    events = provider().parse_frame(fixture_text("alpaca", "mixed_batch.json"))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Trade", "Trade", "Quote", "BarEvent"]
    t1, t2 = events[0], events[1]
    assert t1.ts == datetime(2021, 2, 22, 15, 51, 44, 208000, tzinfo=UTC)
    assert t2.ts == datetime(2021, 2, 22, 15, 51, 44, tzinfo=UTC)
    assert t2.trade_id == "52983525029461"
    assert t2.conditions == (" ", "T", "I")
    assert t1.price == Decimal("126.55") and t2.price == Decimal("126.5")
    assert t1.exchange == "D" and t1.provider == "alpaca"
    bar = events[3]
    assert bar.open == Decimal("388.985") and bar.vwap == Decimal("389.062639")


def test_bars_updated_and_daily():
    b, u, d = provider().parse_frame(fixture_text("alpaca", "bars.json"))
    assert isinstance(b, BarEvent) and not b.updated and b.timeframe == "1m"
    assert b.ts == u.ts == datetime(2021, 2, 22, 19, 15, tzinfo=UTC)
    assert u.updated and u.volume == Decimal(49412) and u.trade_count == 463
    assert d.timeframe == "1d" and d.ts == datetime(2021, 2, 22, 5, tzinfo=UTC)
    assert d.high == Decimal(390)


def test_statuses_halts_and_resumes():
    events = provider().parse_frame(fixture_text("alpaca", "statuses.json"))
    assert all(isinstance(e, Status) for e in events)
    assert [(e.symbol, e.code, e.halted) for e in events] == [
        ("AAPL", "H", True),
        ("AAPL", "Q", True),
        ("AAPL", "T", False),
        ("IBM", "2", True),
        ("IBM", "3", False),
        ("IBM", "F", True),
    ]
    assert events[0].reason == "T12" and events[0].message == "Trading Halt"
    assert events[2].ts.microsecond == 0  # 1 ns truncated, not rounded


def test_crypto_frames_and_huge_trade_ids():
    trade, quote, bar = provider().parse_frame(
        fixture_text("alpaca", "crypto_batch.json")
    )
    assert trade.symbol == "BTC/USD" and trade.trade_id == "3447222699101865076"
    assert trade.size == Decimal("0.00162") and trade.exchange == ""
    assert trade.ts == datetime(2024, 3, 12, 10, 27, 48, 858228, tzinfo=UTC)
    assert quote.bid_size == Decimal("0.27674") and quote.bid_exchange == ""
    assert bar.volume == Decimal("1.23874561")


def test_symbol_mapping_to_canonical():
    p = AlpacaProvider(symbols={"BRK.B": "BRK/B"}, key_id="k", secret="s")
    frame = '[{"T":"t","S":"BRK/B","i":1,"x":"V","p":412.1,"s":5,"t":"2024-01-02T15:00:00Z"}]'
    (t,) = p.parse_frame(frame)
    assert t.symbol == "BRK.B"


def test_msgpack_frames_with_timestamp_extension():
    ts = msgpack.Timestamp(seconds=1613994705, nanoseconds=335689322)
    frame = msgpack.packb(
        [
            {
                "T": "t",
                "S": "AAPL",
                "i": 2**62 + 5,
                "x": "V",
                "p": 126.55,
                "s": 10,
                "t": ts,
                "c": ["@", " "],
                "z": "C",
            },
            {
                "T": "q",
                "S": "AAPL",
                "bx": "V",
                "bp": 126.5,
                "bs": 2,
                "ax": "V",
                "ap": 126.6,
                "as": 3,
                "t": ts,
                "c": ["R"],
                "z": "C",
            },
            {
                "T": "b",
                "S": "AAPL",
                "o": 126,
                "h": 127.5,
                "l": 125.9,
                "c": 127,
                "v": 1000,
                "n": 12,
                "vw": 126.7,
                "t": msgpack.Timestamp(1613994660),
            },
        ]
    )
    trade, quote, bar = provider().parse_frame(frame)
    assert trade.trade_id == str(2**62 + 5) and trade.price == Decimal("126.55")
    assert trade.ts == datetime(2021, 2, 22, 11, 51, 45, 335689, tzinfo=UTC)
    assert trade.conditions == ("@", " ")
    assert quote.ask_price == Decimal("126.6")
    assert bar.ts == datetime(2021, 2, 22, 11, 51, tzinfo=UTC) and bar.open == Decimal(
        126
    )
    (c,) = provider().parse_frame(msgpack.packb([{"T": "success", "msg": "connected"}]))
    assert c.type is ControlType.CONNECTED


def test_msgpack_fixture_file():
    from tests.marketdata.providers.conftest import FIXTURES

    events = provider().parse_frame(
        (FIXTURES / "alpaca" / "trades.msgpack").read_bytes()
    )
    assert [type(e) for e in events] == [Trade, Trade]
    assert events[1].ts.microsecond == 123456


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "not json",
        "{",
        "[1, 2]",
        '{"T": 5}',
        "42",
        '[{"T":"t","S":"AAPL","p":"x","s":1,"t":"2021-02-22T15:51:44Z"}]',
        '[{"T":"t","S":"AAPL","p":1.5,"s":1,"t":"yesterday"}]',
        '[{"T":"q","S":"AAPL","bp":1}]',
        '[{"T":"error","msg":"no code"}]',
        b"\xc1\xc1\xc1",
        b"\x92\x01",
    ],
)
def test_malformed_frames_yield_malformed(frame):
    events = provider().parse_frame(frame)
    assert events and all(
        isinstance(e, Control) and e.type is ControlType.MALFORMED for e in events
    )


def test_one_bad_message_does_not_lose_the_rest():
    frame = (
        '[{"T":"t","S":"AAPL","i":1,"x":"V","p":1.5,"s":1,"t":"2021-02-22T15:51:44Z"},'
        '{"T":"t","S":"AAPL","i":2,"x":"V","p":null,"s":1,"t":"2021-02-22T15:51:44Z"},'
        '{"T":"t","S":"AAPL","i":3,"x":"V","p":1.7,"s":1,"t":"2021-02-22T15:51:45Z"}]'
    )
    events = provider().parse_frame(frame)
    assert [type(e).__name__ for e in events] == ["Trade", "Control", "Trade"]
    assert events[1].type is ControlType.MALFORMED


def test_unknown_message_types_are_ignored():
    assert provider().parse_frame('[{"T":"zz","S":"AAPL"}]') == []


def test_simulator_provider_uses_simulator_credentials(settings):
    settings.SIMULATOR_KEY_ID = "SIMKEY"
    settings.SIMULATOR_SECRET = "simsecret"
    p = SimulatorProvider()
    assert orjson.loads(p.auth_messages()[0])["key"] == "SIMKEY"
    (bar,) = p.parse_frame(fixture_text("alpaca", "bars.json"))[:1]
    assert bar.provider == "simulator"


# --- REST ---------------------------------------------------------------------


def _bar(ts: str, close: float) -> dict:
    return {
        "t": ts,
        "o": 100,
        "h": 101.25,
        "l": 99.5,
        "c": close,
        "v": 1200,
        "n": 10,
        "vw": 100.4,
    }


def test_fetch_bars_follows_next_page_token():
    pages = {
        None: {
            "bars": {
                "AAPL": [
                    _bar("2024-01-02T14:30:00Z", 100.5),
                    _bar("2024-01-02T14:31:00Z", 100.75),
                ]
            },
            "next_page_token": "QUFQTHxNfDE3MDQyMDYyNjAwMDA=",
        },
        "QUFQTHxNfDE3MDQyMDYyNjAwMDA=": {
            "bars": {"AAPL": [_bar("2024-01-02T14:32:00Z", 101)]},
            "next_page_token": None,
        },
    }

    def handler(path, query, headers):
        assert path == "/v2/stocks/bars"
        return 200, {}, pages[query.get("page_token")]

    with LoopbackServer(handler) as server:
        p = provider(data_url=server.url, feed="iex")
        got = list(
            p.fetch_bars(
                symbol="AAPL",
                start=datetime(2024, 1, 2, 14, 30, tzinfo=UTC),
                end=datetime(2024, 1, 2, 15, 0, tzinfo=UTC),
            )
        )
    assert [len(page) for page in got] == [2, 1]
    assert got[1][0].close == Decimal(101) and got[0][1].close == Decimal("100.75")
    first, second = server.requests
    assert first.query == {
        "symbols": "AAPL",
        "timeframe": "1Min",
        "start": "2024-01-02T14:30:00Z",
        "end": "2024-01-02T15:00:00Z",
        "limit": "10000",
        "feed": "iex",
        "adjustment": "raw",
    }
    assert second.query["page_token"] == "QUFQTHxNfDE3MDQyMDYyNjAwMDA="
    assert {k: v for k, v in second.query.items() if k != "page_token"} == first.query
    assert first.headers["apca-api-key-id"] == "AKTESTKEY"
    assert first.headers["apca-api-secret-key"] == "s3cr3t-value"


def test_fetch_bars_crypto_daily_and_end_exclusive():
    def handler(path, query, headers):
        assert path == "/v1beta3/crypto/us/bars"
        assert "feed" not in query and query["timeframe"] == "1Day"
        rows = [
            _bar("2024-01-01T06:00:00Z", 42000.12345678),
            _bar("2024-01-02T06:00:00Z", 1),
        ]
        return 200, {}, {"bars": {"BTC/USD": rows}, "next_page_token": None}

    with LoopbackServer(handler) as server:
        p = provider(data_url=server.url)
        (page,) = p.fetch_bars(
            symbol="BTC/USD",
            start=datetime(2024, 1, 1, tzinfo=UTC),
            end=datetime(2024, 1, 2, 6, tzinfo=UTC),
            timeframe="1d",
        )
    assert len(page) == 1 and page[0].close == Decimal("42000.12345678")
    assert page[0].timeframe == "1d" and page[0].symbol == "BTC/USD"


def test_fetch_bars_empty_result():
    with LoopbackServer(
        lambda *a: (200, {}, {"bars": {}, "next_page_token": None})
    ) as s:
        p = provider(data_url=s.url)
        start = datetime(2024, 1, 6, tzinfo=UTC)
        assert (
            list(p.fetch_bars(symbol="AAPL", start=start, end=start.replace(day=7)))
            == []
        )


def test_retries_429_with_retry_after_then_succeeds():
    calls = []

    def handler(path, query, headers):
        calls.append(1)
        if len(calls) <= 2:
            return (
                429,
                {"Retry-After": "2"},
                {"code": 42910000, "message": "too many requests"},
            )
        return (
            200,
            {},
            {
                "bars": {"AAPL": [_bar("2024-01-02T14:30:00Z", 1)]},
                "next_page_token": None,
            },
        )

    limiter_calls = []
    with LoopbackServer(handler) as server:
        p = provider(data_url=server.url, rate_limiter=lambda: limiter_calls.append(1))
        slept: list[float] = []
        p.http.sleep = slept.append
        start = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
        (page,) = p.fetch_bars(symbol="AAPL", start=start, end=start.replace(hour=15))
    assert len(page) == 1
    assert slept == [2.0, 2.0]
    assert len(limiter_calls) == 3  # the limiter is consulted before every request


def test_429_exhausted_raises_rate_limited():
    with LoopbackServer(
        lambda *a: (429, {"Retry-After": "1"}, {"message": "slow down"})
    ) as s:
        p = provider(data_url=s.url, max_retries=2)
        p.http.sleep = lambda _: None
        start = datetime(2024, 1, 2, tzinfo=UTC)
        with pytest.raises(RateLimitedError) as info:
            list(p.fetch_bars(symbol="AAPL", start=start, end=start.replace(day=3)))
    assert info.value.retry_after == 1.0 and not info.value.permanent
    assert len(s.requests) == 3


def test_persistent_500_is_a_retryable_provider_error():
    with LoopbackServer(
        lambda *a: (500, {}, {"message": "internal server error"})
    ) as s:
        p = provider(data_url=s.url, max_retries=3, backoff=0.01)
        slept: list[float] = []
        p.http.sleep = slept.append
        start = datetime(2024, 1, 2, tzinfo=UTC)
        with pytest.raises(ProviderError) as info:
            list(p.fetch_bars(symbol="AAPL", start=start, end=start.replace(day=3)))
    assert info.value.status == 500 and info.value.permanent is False
    assert len(s.requests) == 4 and len(slept) == 3
    assert slept[0] < slept[2]  # exponential back-off


def test_bad_credentials_403_is_authentication_error_without_secret():
    with LoopbackServer(lambda *a: (403, {}, {"message": "forbidden"})) as s:
        p = provider(data_url=s.url)
        start = datetime(2024, 1, 2, tzinfo=UTC)
        with pytest.raises(AuthenticationError) as info:
            list(p.fetch_bars(symbol="AAPL", start=start, end=start.replace(day=3)))
    assert "forbidden" in str(info.value) and "s3cr3t" not in str(info.value)
    assert info.value.permanent and len(s.requests) == 1


def test_invalid_symbol_422():
    reply = (422, {}, {"code": 42210000, "message": "invalid symbol: A@PL"})
    with LoopbackServer(lambda *a: reply) as s:
        p = provider(data_url=s.url)
        start = datetime(2024, 1, 2, tzinfo=UTC)
        with pytest.raises(UnknownSymbolError):
            list(p.fetch_bars(symbol="A@PL", start=start, end=start.replace(day=3)))


def test_unhashable_type_field_is_malformed():
    # found by hypothesis: a list as "T" must not reach the dispatch dict
    (event,) = provider().parse_frame('[{"T": []}]')
    assert event.type is ControlType.MALFORMED
