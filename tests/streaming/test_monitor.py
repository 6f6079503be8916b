"""The feed monitor's thresholds: each raises its ops alert once while the
condition holds and clears it when it ends. Real worker, real (not started)
connections, events through the worker's ingest path, real PostgreSQL; the
clock and the calendar are injected."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import OperationalError

from alerts.models import OpsAlert
from core.outage import Outage
from marketdata.events import BarEvent, Quote
from marketdata.providers import provider_class
from streaming.connection import FeedConnection, Lifecycle
from streaming.monitor import FeedMonitor, Thresholds

pytestmark = pytest.mark.transactional
T0 = datetime.now(UTC).timestamp()
EVENT_TS = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def quote(symbol: str, n: int) -> Quote:
    return Quote(
        symbol=symbol,
        ts=EVENT_TS + timedelta(seconds=n),
        bid_price=D("100") + n,
        bid_size=D("1"),
        ask_price=D("100.1") + n,
        ask_size=D("1"),
        provider="simulator",
    )


def bar(symbol: str, n: int) -> BarEvent:
    return BarEvent(
        symbol=symbol,
        ts=EVENT_TS.replace(second=0) - timedelta(minutes=n),
        open=D("100"),
        high=D("101"),
        low=D("99"),
        close=D("100.5"),
        volume=D("10"),
        provider="simulator",
        timeframe="1m",
    )


@pytest.fixture
def setup(instruments, make_worker, attach):
    """A worker with one live simulator connection streaming AAPL, and a
    monitor with the issue's thresholds, an injected clock and a market
    that is open unless the test closes it."""
    worker, connection = make_worker()
    attach(worker, instruments["AAPL"], connection)
    connection.desired = {"AAPL"}
    connection.state = "live"
    worker.connections[connection.key] = connection
    clock, market = Clock(), {"open": True}
    worker.monitor = FeedMonitor(
        worker,
        clock=clock,
        market_open=lambda asset_class, now: market["open"],
        thresholds=Thresholds(),
    )
    return worker, connection, clock, market


def run_steps(worker, clock, seconds: int, each=None) -> None:
    """One monitor step per second of the injected clock, on a loop that
    also runs the worker's database thread."""

    async def steps():
        worker.loop = asyncio.get_running_loop()
        for i in range(seconds):
            if each is not None:
                each(i)
            await worker.monitor.step()
            clock.now += 1

    asyncio.run(steps())


def alerts(kind: str) -> list[OpsAlert]:
    return list(OpsAlert.objects.filter(kind=kind).order_by("id"))


@pytest.mark.parametrize(
    ("kind", "limit", "silent", "other"),
    [("no_quotes", 60, quote, bar), ("no_bars", 300, bar, quote)],
)
def test_no_data_while_open_raises_once_and_clears(setup, kind, limit, silent, other):
    worker, connection, clock, _ = setup
    feed = lambda i: worker.process(connection, clock.now, [other("AAPL", i)])  # noqa: E731
    run_steps(worker, clock, limit, each=feed)
    assert alerts(kind) == []  # limit - 1 seconds of silence
    run_steps(worker, clock, limit, each=feed)
    [alert] = alerts(kind)
    assert alert.active and alert.connection == "simulator:equity"
    assert alert.provider == "simulator" and alert.worker == worker.id
    assert "while the market is open" in alert.message
    assert [k for k, _ in worker.monitor.active] == [kind]
    # The data comes back: cleared, and nothing raised again.
    worker.process(connection, clock.now, [silent("AAPL", 999)])
    run_steps(worker, clock, 5, each=feed)
    [alert] = alerts(kind)
    assert alert.cleared_at is not None and alert.cleared_at > alert.raised_at
    assert worker.monitor.report()["ops_alerts"] == []


def test_a_closed_market_or_a_provider_without_quotes_raises_nothing(
    setup, instruments
):
    worker, connection, clock, market = setup
    finnhub = FeedConnection(
        key="finnhub:equity",
        provider=provider_class("finnhub")(),
        asset_class="equity",
        sink=worker.sink,
    )
    finnhub.desired, finnhub.state = {"MSFT"}, "live"
    worker.connections[finnhub.key] = finnhub
    market["open"] = False
    run_steps(worker, clock, 400)
    assert OpsAlert.objects.count() == 0
    # Open: the simulator (Alpaca protocol) misses its quotes; Finnhub,
    # which streams trades only, misses nothing.
    market["open"] = True
    run_steps(worker, clock, 70)
    assert [(a.kind, a.connection) for a in OpsAlert.objects.all()] == [
        ("no_quotes", "simulator:equity")
    ]
    # Closing the market ends the condition.
    market["open"] = False
    run_steps(worker, clock, 2)
    assert OpsAlert.objects.get().cleared_at is not None


def test_a_reconnect_storm_raises_once_and_clears_after_the_hour(setup, caplog):
    worker, connection, clock, _ = setup

    def reconnect(i):
        # What the receive thread does for each lost session.
        connection.stats.reconnects += 1
        worker.process(
            connection,
            clock.now,
            [Lifecycle("down", clock.now, "closed by the server")],
        )
        worker.process(connection, clock.now, [Lifecycle("up", clock.now)])
        worker.process(connection, clock.now, [quote("AAPL", i), bar("AAPL", i)])

    caplog.set_level(logging.INFO, logger="streaming.monitor")
    run_steps(worker, clock, 10, each=reconnect)
    assert alerts("reconnects") == []  # 10 is the limit, not over it
    run_steps(worker, clock, 5, each=reconnect)
    [alert] = alerts("reconnects")
    assert alert.active and "11 reconnects in the last hour" in alert.message
    # Each disconnect is logged with its cause, at most once per 10 s.
    downs = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert downs and downs[0] == "simulator:equity: disconnected: closed by the server"
    assert len(downs) < 15
    # An hour later (data flowing, no reconnects) it clears.
    clock.now += 3600
    run_steps(
        worker,
        clock,
        2,
        each=lambda i: worker.process(
            connection, clock.now, [quote("AAPL", 100 + i), bar("AAPL", 100 + i)]
        ),
    )
    [alert] = alerts("reconnects")
    assert alert.cleared_at is not None


def test_disconnected_for_five_minutes_raises_once_and_clears(setup):
    worker, connection, clock, market = setup
    market["open"] = False  # only the disconnection counts
    connection.state = "backoff"
    connection.last_error = "connect failed: connection refused"
    run_steps(worker, clock, 300)
    assert alerts("disconnected") == []
    run_steps(worker, clock, 30)
    [alert] = alerts("disconnected")
    assert "not connected for 5 min" in alert.message
    assert "connection refused" in alert.message
    assert worker.monitor.score(connection).healthy is False
    connection.state = "live"
    run_steps(worker, clock, 1)
    [alert] = alerts("disconnected")
    assert alert.cleared_at is not None


def test_database_unreachable_is_kept_in_memory_and_recorded_when_it_answers(setup):
    worker, connection, clock, market = setup
    market["open"] = False
    db_clock = Clock()
    worker.db_outage = Outage(
        "PostgreSQL",
        logger=logging.getLogger("test"),
        clock=db_clock,
        retry_every=3600,  # nothing tries the database while the test holds it down
    )
    worker.db_outage.failed(OperationalError("connection refused"), doing="a test")
    worker.db_outage.should_try()  # the retry slot is taken

    def tick(i):
        db_clock.now += 1

    run_steps(worker, clock, 9, each=tick)
    assert worker.monitor.active == {}
    run_steps(worker, clock, 20, each=tick)
    assert [k for k, _ in worker.monitor.active] == ["database"]
    assert len(worker.monitor.outbox) == 1  # raised once, waiting
    assert OpsAlert.objects.count() == 0
    assert worker.health()["monitor"]["database"] == "unreachable"
    # It answers: the condition ends, raise and clear are recorded together.
    worker.db_outage.succeeded()
    run_steps(worker, clock, 2)
    [alert] = alerts("database")
    assert "PostgreSQL unreachable for" in alert.message
    assert "connection refused" in alert.message
    assert alert.cleared_at is not None
    assert worker.monitor.outbox == []


def test_stats_line_each_minute_and_health_document(setup, caplog):
    worker, connection, clock, _ = setup
    caplog.set_level(logging.INFO, logger="streaming.monitor")

    def feed(i):
        q = quote("AAPL", i)
        # Received 20 ms after the exchange time.
        worker.process(connection, q.ts.timestamp() + 0.02, [q])

    run_steps(worker, clock, 65, each=feed)
    document = worker.health()
    [c] = document["connections"]
    assert c["health"]["value"] >= 90 and c["health"]["healthy"]
    assert len(c["history"]) == 3  # a point per 30 s
    t, rate, _lag, score = c["history"][-1]
    assert rate == pytest.approx(1.0, abs=0.1) and score == c["health"]["value"]
    assert c["health"]["parts"]["lag"] == 1.0
    [line] = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("stats")
    ]
    assert line.startswith("stats simulator:equity: live, 0.0 trade/s 1.0 quote/s")
    assert "reconnects 0 in the last hour" in line and line.endswith("database ok")
    assert document["process"]["rss_mb"] > 10 and document["process"]["pid"]
