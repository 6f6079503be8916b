"""Suspect ticks and market anomalies through the stream worker: crafted
events into `process`, steps called directly, real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import timedelta
from decimal import Decimal as D

import pytest
from channels.layers import get_channel_layer

from alerts.engine import AlertEngine
from alerts.services import alert_rule_create
from core.groups import symbol_group
from marketdata.events import Quote, Trade
from marketdata.models import Anomaly, Bar
from marketdata.services import BarRow, bars_upsert
from streaming.health import worker_health
from tests.streaming.helpers import NOW

MINUTE_START = NOW.replace(second=0) - timedelta(minutes=3)


def trades(prices, *, start_second=0.0, step=0.5, first_id=0):
    return [
        Trade(
            symbol="AAPL",
            ts=MINUTE_START + timedelta(seconds=start_second + i * step),
            price=D(p),
            size=D("1"),
            provider="simulator",
            trade_id=f"t{first_id + i}",
        )
        for i, p in enumerate(prices)
    ]


def quiet(n, seed=1):
    rng = random.Random(seed)
    return [f"{100 + rng.gauss(0, 0.03):.2f}" for _ in range(n)]


def store(worker):
    async def run():
        worker.loop = asyncio.get_running_loop()
        await worker.step_store_bars()

    asyncio.run(run())


@pytest.mark.transactional
def test_a_bad_print_stays_out_of_the_bar_and_the_alerts_a_real_jump_passes(
    user, instruments, make_worker, attach
):
    aapl = instruments["AAPL"]
    alert_rule_create(
        owner=user, instrument=aapl, kind="price", direction="above", level=120,
        cooldown_seconds=0,
    )  # fmt: skip
    engine = AlertEngine(symbols={"AAPL"})
    engine.reload()
    worker, connection = make_worker(anomalies=False)
    worker.alert_engine = engine
    state = attach(worker, aapl, connection)
    now = NOW.timestamp()
    # Minute 1: a quiet market, one print at 150, then the market goes on.
    events = trades(quiet(40))
    events += trades(["150.00"], start_second=21, first_id=100)
    events += trades(quiet(10, seed=2), start_second=22, first_id=200)
    worker.process(connection, now, events)
    assert worker.alerts.queue == []  # the print never reached the alerts
    assert state.last < D("101")
    # Minute 2: a real jump to 130, confirmed by the trades that follow.
    jump = trades(
        ["130.00", "130.02", "129.98", "130.01"], start_second=60, first_id=300
    )
    worker.process(connection, now, jump[:2])
    assert state.last < D("101")  # held: one more confirmation needed
    worker.process(connection, now, jump[2:])
    assert state.last == D("130.01")
    assert len(worker.alerts.queue) == 1  # the alert fired on the real move
    store(worker)
    bars = list(Bar.objects.filter(instrument=aapl, timeframe="1m").order_by("ts"))
    assert [b.ts for b in bars] == [MINUTE_START, MINUTE_START + timedelta(minutes=1)]
    assert bars[0].high < D("101") and bars[0].trade_count == 50
    assert (bars[1].open, bars[1].close, bars[1].trade_count) == (
        D("130"), D("130.01"), 4,
    )  # fmt: skip
    assert state.suspect.counts() == {
        "suspect": 4, "confirmed": 3, "rejected": 1, "held": 0,
    }  # fmt: skip
    worker.connections[connection.key] = connection
    health = worker_health(worker)
    assert health["connections"][0]["suspect_ticks"] == {
        "suspect": 4, "confirmed": 3, "rejected": 1,
    }  # fmt: skip
    assert health["suspect_ticks"]["AAPL"]["rejected"] == 1


@pytest.mark.transactional
def test_a_quote_confirms_a_jump_and_a_held_trade_is_rejected_at_shutdown(
    instruments,
    make_worker,
    attach,
):
    worker, connection = make_worker(anomalies=False)
    state = attach(worker, instruments["AAPL"], connection)
    now = NOW.timestamp()
    worker.process(connection, now, trades(quiet(40)))
    worker.process(connection, now, trades(["90.00"], start_second=30, first_id=50))
    quote = Quote(
        symbol="AAPL", ts=MINUTE_START + timedelta(seconds=30.5),
        bid_price=D("89.98"), bid_size=D("1"), ask_price=D("90.02"),
        ask_size=D("1"), provider="simulator",
    )  # fmt: skip
    worker.process(connection, now, [quote])
    assert state.last == D("90.00") and state.minute.low == D("90.00")
    worker.process(connection, now, trades(["70.00"], start_second=31, first_id=60))
    assert state.suspect.counts()["held"] == 1
    assert worker.suspects_expire(final=True) == 1
    assert state.suspect.counts() == {
        "suspect": 2, "confirmed": 1, "rejected": 1, "held": 0,
    }  # fmt: skip
    assert state.minute.low == D("90.00")


def _history(aapl, minutes):
    """Quiet stored minutes ending where the live ones begin."""
    rng = random.Random(4)
    price, rows = 100.0, []
    for i in range(minutes, 0, -1):
        price *= math.exp(rng.gauss(0, 0.0005))
        p = D(f"{price:.2f}")
        rows.append(
            BarRow(aapl.id, "1m", MINUTE_START - timedelta(minutes=i), p, p, p, p,
                   D(str(round(rng.gammavariate(4, 250)))), None, 50)
        )  # fmt: skip
    bars_upsert(rows=rows, provider="simulator")
    return float(p)


@pytest.mark.transactional
def test_a_spike_in_a_live_minute_is_recorded_once_and_published(
    instruments, make_worker, attach
):
    aapl = instruments["AAPL"]
    last = _history(aapl, 200)
    worker, connection = make_worker(suspect=False)
    attach(worker, aapl, connection)
    spike = f"{last * 1.03:.2f}"
    worker.process(connection, NOW.timestamp(), trades([f"{last:.2f}", spike]))
    layer = get_channel_layer()

    async def run():
        worker.loop = asyncio.get_running_loop()
        channel = await layer.new_channel()
        await layer.group_add(symbol_group("AAPL"), channel)
        await worker.step_store_bars()  # stores the minute; history loads
        message = await asyncio.wait_for(layer.receive(channel), 5)
        await layer.group_discard(symbol_group("AAPL"), channel)
        return message

    message = asyncio.run(run())
    stored = list(Anomaly.objects.filter(instrument=aapl))
    assert [(a.kind, a.ts, a.direction) for a in stored] == [
        ("return_spike", MINUTE_START, "up")
    ]
    assert stored[0].score >= 6 and "robust deviations" in stored[0].explain
    assert message["type"] == "market.anomaly"
    assert message["anomaly"]["kind"] == "return_spike"
    assert message["anomaly"]["ts"] == MINUTE_START.isoformat()
    # The same minute again (a replay, a restart) is not recorded twice.
    worker.anomalies.queue.append((aapl.id, _as_anomaly(stored[0])))
    store(worker)
    assert Anomaly.objects.filter(instrument=aapl).count() == 1
    assert worker.anomalies.document()["recorded"] == 2


def _as_anomaly(row):
    from marketdata.anomalies import Anomaly as Found

    return Found(
        symbol="AAPL", kind=row.kind, ts=row.ts, score=row.score, value=row.value,
        baseline=row.baseline, direction=row.direction, explain=row.explain,
    )  # fmt: skip
