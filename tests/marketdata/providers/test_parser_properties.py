"""Property tests: no frame, however broken, makes a parser raise."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketdata.events import BarEvent, Control, ControlType, Quote, Status, Trade
from marketdata.providers.alpaca import AlpacaProvider
from marketdata.providers.binance import BinanceProvider
from marketdata.providers.finnhub import FinnhubProvider
from tests.marketdata.providers.conftest import FIXTURES

EVENT_TYPES = (Trade, Quote, BarEvent, Status, Control)
PROVIDERS = {
    "alpaca": lambda: AlpacaProvider(key_id="k", secret="s"),
    "finnhub": lambda: FinnhubProvider(token="t"),
    "binance": lambda: BinanceProvider(symbols={"BTC/USD": "BTCUSDT"}),
}
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _frames(vendor: str) -> list[bytes]:
    frames = []
    for path in sorted((FIXTURES / vendor).iterdir()):  # rest/ holds REST bodies
        if path.is_dir():
            continue
        if path.suffix == ".msgpack":
            frames.append(path.read_bytes())
        elif path.suffix == ".json":
            data = orjson.loads(path.read_bytes())
            if vendor == "alpaca" and path.name == "errors.json":
                frames.extend(orjson.dumps(f) for f in data)
            else:
                frames.append(orjson.dumps(data))
    return frames


FRAMES = {vendor: _frames(vendor) for vendor in PROVIDERS}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=20,
)


def _check(events) -> None:
    assert isinstance(events, list)
    assert all(isinstance(e, EVENT_TYPES) for e in events)


@pytest.mark.parametrize("vendor", PROVIDERS)
def test_every_fixture_frame_parses_without_malformed(vendor):
    provider = PROVIDERS[vendor]()
    for frame in FRAMES[vendor]:
        events = provider.parse_frame(frame)
        _check(events)
        assert not any(
            isinstance(e, Control) and e.type is ControlType.MALFORMED for e in events
        ), frame


@pytest.mark.parametrize("vendor", PROVIDERS)
@SETTINGS
@given(data=st.data())
def test_truncated_frames_are_malformed(vendor, data):
    frame = data.draw(st.sampled_from(FRAMES[vendor]))
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    truncated = frame[:cut]
    as_text = data.draw(st.booleans()) and frame[:1] in (b"[", b"{")
    if as_text:
        truncated = truncated.decode("utf-8", "replace")
    events = PROVIDERS[vendor]().parse_frame(truncated)
    _check(events)
    assert events and all(
        isinstance(e, Control) and e.type is ControlType.MALFORMED for e in events
    )


@pytest.mark.parametrize("vendor", PROVIDERS)
@SETTINGS
@given(raw=st.binary(max_size=200) | st.text(max_size=200))
def test_random_bytes_and_text_never_raise(vendor, raw):
    _check(PROVIDERS[vendor]().parse_frame(raw))


@pytest.mark.parametrize("vendor", PROVIDERS)
@SETTINGS
@given(value=json_values)
def test_random_json_never_raises(vendor, value):
    _check(PROVIDERS[vendor]().parse_frame(json.dumps(value)))


alpaca_messages = st.fixed_dictionaries(
    {
        "T": st.sampled_from(
            ["t", "q", "b", "u", "d", "s", "success", "error", "subscription"]
        )
    },
    optional={
        k: json_values
        for k in (
            "S",
            "t",
            "p",
            "s",
            "i",
            "c",
            "bp",
            "bs",
            "ap",
            "as",
            "o",
            "h",
            "l",
            "v",
            "n",
            "vw",
            "sc",
            "code",
            "msg",
            "trades",
        )
    },
)


@SETTINGS
@given(messages=st.lists(alpaca_messages, max_size=5))
def test_alpaca_shaped_garbage_never_raises(messages):
    _check(PROVIDERS["alpaca"]().parse_frame(json.dumps(messages)))


binance_payloads = st.fixed_dictionaries(
    {"e": st.sampled_from(["trade", "aggTrade", "kline", "serverShutdown"])},
    optional={
        k: json_values
        for k in ("E", "s", "t", "p", "q", "T", "a", "k", "u", "b", "B", "A")
    },
)


@SETTINGS
@given(payload=binance_payloads, combined=st.booleans())
def test_binance_shaped_garbage_never_raises(payload, combined):
    frame = {"stream": "btcusdt@trade", "data": payload} if combined else payload
    _check(PROVIDERS["binance"]().parse_frame(json.dumps(frame)))


@SETTINGS
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(["s", "p", "t", "v", "c"]), json_values)
    )
)
def test_finnhub_shaped_garbage_never_raises(rows):
    _check(
        PROVIDERS["finnhub"]().parse_frame(json.dumps({"type": "trade", "data": rows}))
    )
