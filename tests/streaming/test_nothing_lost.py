"""Every closed minute ends stored or in the gap ledger, and fired alerts are
recorded once, whatever the database does meanwhile.

The database "outage" here is PostgreSQL refusing writes: a trigger that raises
on the table under test, dropped when the outage ends. The process-level
outages (a stopped server) are in `tests/chaos/`.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection as db

from marketdata.events import Control, ControlType, Trade
from marketdata.models import Bar, Gap
from streaming.aggregator import MinuteAggregator
from streaming.connection import Lifecycle

MINUTE = timedelta(minutes=1)
# Event times ahead of the wall clock: the worker's clock follows the feed
# (`StreamWorker.now`), so each test decides when its minutes close.
T0 = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)


@contextmanager
def refusing_writes(table: str):
    """PostgreSQL refuses every insert and update on `table` until the block ends."""
    with db.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION tapeline_test_refuse() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'outage'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER tapeline_test_refuse BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION tapeline_test_refuse()"
        )
    try:
        yield
    finally:
        with db.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER tapeline_test_refuse ON {table}")


def run(worker, *steps):
    async def go():
        worker.loop = asyncio.get_running_loop()
        for step in steps:
            result = step()
            if asyncio.iscoroutine(result):
                await result

    asyncio.run(go())


def btc_trade(minute: int, second: int, price: str) -> Trade:
    return Trade(
        symbol="BTC/USD",
        ts=T0 + timedelta(minutes=minute, seconds=second),
        price=D(price),
        size=D("0.5"),
        provider="simulator",
    )


def minutes_of(queryset) -> set[int]:
    return {int((ts - T0) / MINUTE) for ts in queryset}


def ledger_minutes(instrument) -> set[int]:
    out = set()
    for gap in Gap.objects.filter(instrument=instrument):
        minute = gap.start
        while minute < gap.end:
            out.add(int((minute - T0) / MINUTE))
            minute += MINUTE
    return out


def test_unstored_minutes_are_kept_past_the_late_window_and_overflow_is_listed():
    agg = MinuteAggregator(grace=0, unstored_limit=4)
    for minute in range(10):
        agg.add_trade("BTC/USD", T0 + minute * MINUTE, D("1"), D("1"))
        for item in agg.due(now=T0 + (minute + 1) * MINUTE):
            item.bar.dirty = True  # every write fails
    agg.add_trade("BTC/USD", T0 + 20 * MINUTE, D("1"), D("1"))
    closed = agg.due(now=T0 + 21 * MINUTE)
    # 4 kept for the next try, 6 listed for the ledger, nothing forgotten silently
    kept = sorted(int((c.bar.ts - T0) / MINUTE) for c in closed)
    dropped = sorted(int((m - T0) / MINUTE) for _, m in agg.take_overflow())
    assert dropped == [0, 1, 2, 3, 4, 5]
    assert kept == [6, 7, 8, 9, 20]


@pytest.mark.transactional
def test_a_storage_outage_longer_than_memory_ends_stored_or_in_the_ledger(
    instruments,
    make_worker,
    attach,
):
    btc = instruments["BTC/USD"]
    worker, connection = make_worker(unstored_minutes=3, gap_settle=0)
    attach(worker, btc, connection)
    with refusing_writes("marketdata_bar"):
        for minute in range(12):
            worker.process(connection, 0.0, [btc_trade(minute, 5, "100")])
            worker.event_clock = T0 + timedelta(minutes=minute + 1, seconds=3)
            run(worker, worker.step_store_bars)
        assert Bar.objects.filter(instrument=btc).count() == 0
    worker.process(connection, 0.0, [btc_trade(12, 5, "100")])
    worker.event_clock = T0 + timedelta(minutes=13, seconds=3)
    run(worker, worker.step_store_bars, worker.step_gaps)
    stored = minutes_of(Bar.objects.filter(instrument=btc).values_list("ts", flat=True))
    in_ledger = ledger_minutes(btc)
    assert stored | in_ledger == set(range(13))
    assert len(in_ledger) >= 1 and len(stored) >= 3
    assert worker.ledger.overflowed == len(in_ledger)


@pytest.mark.transactional
def test_a_malformed_frame_sends_its_minute_to_the_ledger_for_every_symbol(
    instruments,
    make_worker,
    attach,
):
    btc, eth = instruments["BTC/USD"], instruments["ETH/USD"]
    worker, connection = make_worker(gap_settle=0)
    attach(worker, btc, connection)
    attach(worker, eth, connection)
    worker.process(connection, 0.0, [btc_trade(0, 5, "100")])
    worker.event_clock = T0 + timedelta(seconds=30)
    malformed = Control(
        type=ControlType.MALFORMED, provider="simulator", message="unexpected end"
    )
    worker.process(connection, 0.0, [malformed])
    worker.process(connection, 0.0, [btc_trade(0, 50, "101"), btc_trade(1, 5, "102")])
    worker.event_clock = T0 + timedelta(minutes=2, seconds=10)
    run(worker, worker.step_store_bars, worker.step_gaps)
    # the trade-built minute 0 may miss trades of the broken frame: not stored
    assert minutes_of(
        Bar.objects.filter(instrument=btc).values_list("ts", flat=True)
    ) == {1}
    assert ledger_minutes(btc) == {0} and ledger_minutes(eth) == {0}


@pytest.mark.transactional
def test_a_connection_still_down_at_shutdown_leaves_its_closed_minutes_in_the_ledger(
    instruments,
    make_worker,
    attach,
):
    """The drop cut minute 0 (trades in flight) and the feed never came back:
    at shutdown the minutes closed since are in the ledger, not left to a
    restart that may never come."""
    btc = instruments["BTC/USD"]
    worker, connection = make_worker(gap_settle=0)
    attach(worker, btc, connection)
    worker.process(connection, 0.0, [btc_trade(0, 5, "100"), btc_trade(1, 0, "101")])
    dropped_at = (T0 + timedelta(minutes=1, seconds=1)).timestamp()
    worker.process(connection, dropped_at, [Lifecycle("down", dropped_at, "lost")])
    worker.event_clock = T0 + timedelta(minutes=3, seconds=10)
    run(worker, worker.stop)
    assert not Bar.objects.filter(instrument=btc).exists()  # tainted: not stored
    assert ledger_minutes(btc) == {0, 1, 2}


@pytest.mark.transactional
def test_a_provider_bar_that_never_comes_is_reconciled_into_the_ledger(
    instruments, make_worker, attach
):
    btc = instruments["BTC/USD"]
    worker, connection = make_worker(gap_settle=0, reconcile_settle=5)
    state = attach(worker, btc, connection)
    state.reconciled_until = T0
    for minute in range(4):
        worker.process(connection, 0.0, [btc_trade(minute, 5, "100")])
        if minute != 2:  # the bar of minute 2 was in a frame that never arrived
            worker.aggregator.apply_bar(
                "BTC/USD",
                ts=T0 + minute * MINUTE,
                open=D("100"),
                high=D("100"),
                low=D("100"),
                close=D("100"),
                volume=D("0.5"),
                vwap=None,
                trade_count=1,
            )
    worker.event_clock = T0 + timedelta(minutes=4, seconds=6)
    run(worker, worker.step_store_bars, worker.step_reconcile, worker.step_gaps)
    stored = minutes_of(Bar.objects.filter(instrument=btc).values_list("ts", flat=True))
    assert stored == {0, 1, 3}
    assert ledger_minutes(btc) == {2}
    run(worker, worker.step_reconcile, worker.step_gaps)
    assert Gap.objects.filter(instrument=btc).count() == 1  # reported once


@pytest.mark.transactional
def test_gap_reports_that_fail_are_retried_until_the_ledger_takes_them(
    instruments, make_worker
):
    btc = instruments["BTC/USD"]
    worker, connection = make_worker(gap_settle=0)
    row = worker.instrument_rows.setdefault(
        "BTC/USD",
        {"id": btc.id, "symbol": "BTC/USD", "asset_class": "crypto", "provider": "x"},
    )
    worker.gaps.add(row, T0, T0 + 3 * MINUTE)
    worker.event_clock = T0 + 10 * MINUTE
    with refusing_writes("marketdata_gap"):
        run(worker, worker.step_gaps, worker.step_gaps)
        assert not Gap.objects.exists()
    run(worker, worker.step_gaps)
    assert ledger_minutes(btc) == {0, 1, 2}
    assert worker.gaps_reported == 1


def fired_alert(rule, instrument, seconds):
    from alerts.engine import FiredAlert

    return FiredAlert(
        rule_id=rule.pk,
        owner_id=rule.owner_id,
        instrument_id=instrument.id,
        symbol=instrument.symbol,
        kind="price",
        direction="above",
        level=100.0,
        ts=T0 + timedelta(seconds=seconds),
        price=D("101"),
        value=101.0,
        previous=99.0,
        values={},
        message=f"BTC/USD crossed above 100 ({seconds})",
    )


@pytest.mark.transactional
def test_alerts_fired_during_an_outage_are_recorded_once_afterwards_as_delayed(
    instruments, user, make_worker
):
    from alerts.models import AlertEvent, AlertRule

    btc = instruments["BTC/USD"]
    rule = AlertRule.objects.create(
        owner=user, instrument=btc, kind="price", direction="above", level=D("100")
    )
    worker, _ = make_worker()
    worker.alerts.add([fired_alert(rule, btc, 1), fired_alert(rule, btc, 2)])
    with refusing_writes("alerts_alertevent"):
        run(worker, worker.step_alerts, worker.step_alerts)
        assert not AlertEvent.objects.exists()
    # the outage lasted: the alerts are recorded late, with their own time
    AlertEvent.objects.all()  # nothing to see yet
    for f in worker.alerts.queue:
        object.__setattr__(f, "fired_at", f.fired_at - timedelta(minutes=5))
    run(worker, worker.step_alerts, worker.step_alerts)
    events = list(AlertEvent.objects.order_by("ts"))
    assert [e.ts for e in events] == [T0 + timedelta(seconds=s) for s in (1, 2)]
    assert all(e.delayed for e in events)


@pytest.mark.transactional
def test_a_retried_alert_batch_whose_first_write_committed_is_not_recorded_twice(
    instruments, user
):
    from dataclasses import replace

    from alerts.models import AlertEvent, AlertRule
    from alerts.services import alert_events_record

    btc = instruments["BTC/USD"]
    rule = AlertRule.objects.create(
        owner=user, instrument=btc, kind="price", direction="above", level=D("100")
    )
    batch = [
        replace(fired_alert(rule, btc, s), key=f"k{s}", fired_at=datetime.now(UTC))
        for s in (1, 2)
    ]
    alert_events_record(fired=batch[:1])
    alert_events_record(fired=batch)
    assert sorted(AlertEvent.objects.values_list("key", flat=True)) == ["k1", "k2"]
    assert not any(e.delayed for e in AlertEvent.objects.all())


@pytest.mark.transactional
def test_the_sweep_reports_holes_in_stored_minutes_whatever_made_them(instruments):
    from marketdata.services import bars_upsert
    from marketdata.sweep import gaps_sweep

    btc = instruments["BTC/USD"]
    holes = {7, 8, 20, 90}
    rows = [
        (btc.id, "1m", T0 + m * MINUTE, D(1), D(1), D(1), D(1), D(1), None, 1)
        for m in range(120)
        if m not in holes
    ]
    bars_upsert(rows=rows, provider="simulator", origin="live")
    queued = gaps_sweep(
        instruments=[(btc.id, "crypto", False)], start=T0, end=T0 + 120 * MINUTE
    )
    # holes less than 30 minutes apart are one request; 90 is its own
    assert queued == 2
    ranges = sorted(
        (int((g.start - T0) / MINUTE), int((g.end - T0) / MINUTE))
        for g in Gap.objects.filter(instrument=btc)
    )
    assert ranges == [(7, 21), (90, 91)]
    # a second sweep before any repair: the same two rows, still queued
    assert (
        gaps_sweep(
            instruments=[(btc.id, "crypto", False)], start=T0, end=T0 + 120 * MINUTE
        )
        == 2
    )
    assert Gap.objects.filter(instrument=btc).count() == 2


@pytest.mark.transactional
def test_a_forming_minute_is_not_stored_at_shutdown_when_its_marker_cannot_be(
    instruments, settings
):
    """Stored without its "partial" marker, a forming minute would pass for a
    complete one after the restart: it is left to the restart backfill."""
    from core.redis import redis_client
    from streaming.services import live_bars_store

    aapl = instruments["AAPL"]
    closed, forming = T0, T0 + MINUTE
    row = (aapl.id, "1m", closed, D(1), D(1), D(1), D(1), D(1), None, 1)
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens: refused
    redis_client.cache_clear()
    try:
        live_bars_store(
            rows={"simulator": [row, (aapl.id, "1m", forming, *row[3:])]},
            partial={"AAPL": forming.isoformat()},
        )
    finally:
        redis_client.cache_clear()
    assert list(Bar.objects.filter(instrument=aapl).values_list("ts", flat=True)) == [
        closed
    ]
