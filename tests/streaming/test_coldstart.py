"""`streaming.coldstart.ColdStart` steps against the real simulator, Redis and
PostgreSQL: live data is never moved backwards, and a snapshot's previous
close lets change-% rules evaluate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from alerts.services import alert_rule_create
from marketdata.events import Trade
from simulator import prices
from streaming.alerting import alert_engine_build
from tests.plugins.simulator import point_settings_at, start_simulator

SATURDAY = datetime(2025, 1, 4, 15, 0, tzinfo=UTC)  # stocks closed, crypto trading


@pytest.fixture
def sim(settings):
    sim = start_simulator(hours="nyse", clock_start=SATURDAY)
    point_settings_at(settings, sim)
    settings.TAPELINE_CRYPTO_PROVIDER = ""
    try:
        yield sim
    finally:
        sim.stop_thread()


def run_coldstart(worker, symbols) -> None:
    async def main() -> None:
        worker.loop = asyncio.get_running_loop()
        worker.coldstart.add(symbols)
        await worker.coldstart.step()
        await asyncio.gather(*worker.coldstart.tasks.values())

    asyncio.run(main())


def utc_close_before(symbol: str, seed: int, day: datetime) -> D:
    start = int(day.timestamp())
    bars = prices.minute_bars(
        symbol, start - 3600, start, seed=seed, limit=1, descending=True
    )
    return D(str(float(bars.c[0])))


def trade(symbol: str, ts: datetime, price: D) -> Trade:
    return Trade(symbol=symbol, ts=ts, price=price, size=D("0.5"), provider="simulator")


def test_an_equity_row_gets_friday_against_thursday(
    sim, instruments, make_worker, attach
):
    worker, _ = make_worker(publish_hz=10)
    state = attach(worker, instruments["AAPL"])
    worker.publisher.dirty.clear()  # published when attached; again below
    run_coldstart(worker, ["AAPL"])
    friday = prices.minute_bars(
        "AAPL", 1735862400, 1735948800, seed=sim.seed, hours="nyse"
    )  # 2025-01-03, UTC bounds cover the whole New York session
    thursday = prices.minute_bars(
        "AAPL", 1735776000, 1735862400, seed=sim.seed, hours="nyse"
    )
    doc = state.document()
    assert D(doc["last"]) == D(str(float(friday.c[-1])))
    assert D(doc["prev_close"]) == D(str(float(thursday.c[-1])))
    assert D(doc["open"]) == D(str(float(friday.o[0])))
    last, prev = D(doc["last"]), D(doc["prev_close"])
    assert D(doc["change_pct"]) == ((last - prev) / prev * 100).quantize(D("0.0001"))
    assert "AAPL" in worker.publisher.dirty  # published on the next step
    assert state.received_at is not None


def test_a_live_trade_newer_than_the_snapshot_is_kept_and_change_pct_fires(
    sim, user, instruments, make_worker, attach
):
    btc = instruments["BTC/USD"]
    alert_rule_create(
        owner=user,
        instrument=btc,
        kind="change_pct",
        direction="above",
        level=D("5"),
        cooldown_seconds=0,
    )
    worker, _ = make_worker(publish_hz=10)
    worker.alert_engine = alert_engine_build()
    state = attach(worker, btc)
    connection = worker.routes["BTC/USD"]
    # A live trade a minute ahead of the simulator's clock: newer than any
    # snapshot it can serve.
    live_at = sim.clock.now() + timedelta(minutes=1)
    worker.process(connection, live_at.timestamp(), [trade("BTC/USD", live_at, D("1"))])
    assert state.prev_close is None and state.document()["change_pct"] is None

    run_coldstart(worker, ["BTC/USD"])

    prev_close = utc_close_before("BTC/USD", sim.seed, datetime(2025, 1, 4, tzinfo=UTC))
    doc = state.document()
    assert doc["last"] == "1" and state.last_trade_ts == live_at  # not moved back
    assert D(doc["prev_close"]) == prev_close
    assert D(doc["open"]) == prev_close  # the UTC day opened at yesterday's close
    assert state.bid is not None and state.ask is not None
    # The engine sees the snapshot's previous close: +1 % (baseline), then
    # +6 % crosses the 5 % rule.
    for seconds, factor in ((1, D("1.01")), (2, D("1.06"))):
        at = live_at + timedelta(seconds=seconds)
        price = (prev_close * factor).quantize(D("0.01"))
        worker.process(connection, at.timestamp(), [trade("BTC/USD", at, price)])
    fired = list(worker.alerts.queue)
    assert len(fired) == 1 and fired[0].kind == "change_pct"


def test_a_state_without_snapshots_keeps_what_it_has(
    sim, instruments, make_worker, attach
):
    # The simulator refuses every snapshot request: the row keeps its live
    # price, the failure is counted and the symbol waits for a retry.
    worker, _ = make_worker(publish_hz=10)
    state = attach(worker, instruments["BTC/USD"])
    connection = worker.routes["BTC/USD"]
    live_at = sim.clock.now()
    worker.process(connection, live_at.timestamp(), [trade("BTC/USD", live_at, D("7"))])
    sim.faults.update(rest_500_rate=1.0)
    worker.coldstart.max_retries = 0
    run_coldstart(worker, ["BTC/USD"])
    assert worker.coldstart.errors == 1
    assert "BTC/USD" in worker.coldstart.pending
    assert state.document()["last"] == "7" and state.prev_close is None
