"""Market hours as the pages say them and the stream worker judges them: US
equities on the extended session when the provider serves pre- and
post-market (the simulator, Alpaca), the regular one otherwise; crypto 24/7;
the market clock a simulated feed clock when the workers report one ahead."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

import orjson
import pytest

from core.redis import redis_client
from dashboard.market_hours import equity_hours, market_clock, market_note
from marketdata.calendar import nyse_session
from streaming.selectors import health_key
from streaming.watchdog import market_open

NY = "America/New_York"


def ny(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZoneInfo(NY)).astimezone(UTC)


@pytest.mark.parametrize(
    ("at", "phase", "text"),
    [
        (ny(2, 8), "pre-market", "pre-market until 09:30 New York"),
        (ny(2, 12), "regular", "regular session until 16:00 New York"),
        (ny(2, 17), "after-hours", "after-hours until 20:00 New York"),
        (ny(2, 21), "closed", "closed (after the close)"),
        (ny(3, 2), "closed", "closed (overnight)"),
        (ny(5, 12), "closed", "closed (weekend)"),
        (ny(25, 12), "closed", "closed (exchange holiday)"),
    ],
)
def test_equity_hours_on_the_extended_session(at, phase, text):
    hours = equity_hours(at, extended=True)
    assert hours["phase"] == phase
    assert hours["open"] is (phase != "closed")
    assert text in hours["text"]


def test_closed_says_when_pre_market_opens_and_that_prices_are_the_last_sessions():
    text = equity_hours(ny(5, 12), extended=True)["text"]  # Saturday
    assert "rows show the last session's prices" in text
    assert "pre-market opens Mon 04:00 New York" in text
    # Without extended hours 08:00 is before the open.
    hours = equity_hours(ny(2, 8), extended=False)
    assert not hours["open"]
    assert "opens Wed 09:30 New York" in hours["text"]


def test_the_worker_judges_open_like_the_page():
    pre_market = ny(2, 8)
    assert market_open("equity", "simulator", pre_market)  # extended hours
    assert market_open("etf", "alpaca", pre_market)
    assert not market_open("equity", "finnhub", pre_market)  # regular only
    assert not market_open("equity", "simulator", ny(2, 21))
    assert market_open("crypto", "simulator", ny(5, 3))


def _a_trading_thursday_ahead(hour: int) -> datetime:
    """`hour` New York on a Thursday at least a week ahead that is a trading
    day (the simulated clock must run ahead of the wall clock)."""
    day = datetime.now(ZoneInfo(NY)).date() + timedelta(days=7)
    day += timedelta(days=(3 - day.weekday()) % 7)
    while nyse_session(day) is None:
        day += timedelta(days=7)
    return datetime.combine(day, dtime(hour), tzinfo=ZoneInfo(NY))


def test_a_feed_clock_ahead_of_the_wall_clock_is_simulated_market_time():
    redis = redis_client()
    redis.delete(health_key())
    now = time.time()
    document = {"id": "w", "state": "running", "reported_at": now}
    redis.hset(health_key(), "w", orjson.dumps({**document, "market_clock": now}))
    at, simulated = market_clock()
    assert not simulated and abs(at.timestamp() - now) < 5
    ahead = _a_trading_thursday_ahead(9).timestamp()
    redis.hset(health_key(), "w", orjson.dumps({**document, "market_clock": ahead}))
    at, simulated = market_clock()
    assert simulated and abs(at.timestamp() - ahead) < 5
    note = market_note(at, simulated)
    assert note["clock_text"].startswith("Simulated market time Thu 09:00 New York")
    assert note["equities_text"].startswith("US equities and ETFs: pre-market")
    redis.delete(health_key())
