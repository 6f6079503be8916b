from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from streaming.freshness import freshness_of
from streaming.state import InstrumentState


def test_freshness_tells_a_quiet_market_from_a_broken_feed():
    common = {"subscribed_at": 0.0, "now": 100.0, "stale_after": 30.0}
    assert (
        freshness_of(halted=True, market_open=True, last_event_at=99.0, **common)
        == "halted"
    )
    assert (
        freshness_of(halted=False, market_open=False, last_event_at=1.0, **common)
        == "closed"
    )
    assert (
        freshness_of(halted=False, market_open=True, last_event_at=50.0, **common)
        == "stale"
    )
    assert (
        freshness_of(halted=False, market_open=True, last_event_at=90.0, **common)
        == "live"
    )
    # nothing received yet: counted from the subscription
    assert (
        freshness_of(halted=False, market_open=True, last_event_at=None, **common)
        == "stale"
    )


def trade(state, ts, price, size="1"):
    return state.apply_trade(ts, D(price), D(size))


def test_a_new_trading_day_restarts_the_session_and_sets_the_previous_close():
    state = InstrumentState(
        symbol="AAPL", instrument_id=1, asset_class="equity", provider="x"
    )
    day1 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 New York
    trade(state, day1, "100")
    trade(state, day1 + timedelta(hours=5), "104", "3")  # 15:00 New York
    assert (state.open, state.high, state.volume) == (D("100"), D("104"), D("4"))
    trade(state, day1 + timedelta(days=1), "102")  # next New York day
    doc = state.document()
    assert doc["prev_close"] == "104" and doc["open"] == "102" and doc["volume"] == "1"
    assert doc["change"] == "-2" and doc["change_pct"] == "-1.9231"


def test_crypto_days_are_utc_days():
    state = InstrumentState(
        symbol="BTC/USD", instrument_id=2, asset_class="crypto", provider="x"
    )
    trade(state, datetime(2026, 3, 2, 23, 59, tzinfo=UTC), "50000")
    trade(state, datetime(2026, 3, 3, 0, 1, tzinfo=UTC), "50500")
    assert state.prev_close == D("50000") and state.open == D("50500")


def test_the_providers_daily_bar_is_the_session_authority():
    state = InstrumentState(
        symbol="AAPL", instrument_id=1, asset_class="equity", provider="x"
    )
    ts = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    trade(state, ts, "100")
    state.apply_daily_bar(
        ts.replace(hour=5), D("98"), D("101"), D("97"), D("100"), D("5000")
    )
    trade(state, ts + timedelta(minutes=1), "100.5")
    doc = state.document()
    assert (doc["open"], doc["high"], doc["low"], doc["volume"]) == (
        "98",
        "101",
        "97",
        "5000",
    )
    assert doc["last"] == "100.5"
