"""Multi-condition rules across shards: the home shard's worker reads the
other instrument's price from the snapshot store and records the alert once;
the worker hands anomalies to the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from alerts.engine import AlertEngine
from marketdata.events import Trade
from streaming.shard import Shard, shard_of
from streaming.snapshots import snapshots_put
from tests.streaming.test_nothing_lost import run

T0 = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)


def two_symbols_on_different_shards(instruments) -> tuple[str, str]:
    symbols = sorted(instruments)
    first = symbols[0]
    other = next(s for s in symbols if shard_of(s, 2) != shard_of(first, 2))
    return first, other


@pytest.mark.transactional
def test_home_shard_reads_the_other_shards_price_and_records_once(
    instruments, user, make_worker
):
    from alerts.models import AlertEvent
    from alerts.services import alert_rule_create

    home, other = two_symbols_on_different_shards(instruments)
    rule = alert_rule_create(
        owner=user,
        instrument=None,
        kind="multi",
        combine="and",
        cooldown_seconds=0,
        conditions=[
            {"kind": "price", "symbol": home, "direction": "above", "level": "10"},
            {"kind": "price", "symbol": other, "direction": "above", "level": "10"},
        ],
    )
    shard = Shard(shard_of(home, 2), 2)
    worker, _ = make_worker(shard=shard)
    engine = AlertEngine(owns=shard.owns)
    engine.reload()
    worker.alert_engine = engine
    assert engine.foreign_symbols() == {other}

    def snapshot(price: str, seconds: int) -> dict:
        ts = (T0 + timedelta(seconds=seconds)).isoformat()
        return {"symbol": other, "last": price, "ts": ts, "freshness": "live"}

    snapshots_put(snapshots=[snapshot("9", 0)])
    run(worker, worker.step_alerts)
    worker.alert_bridge.on_event(
        Trade(symbol=home, ts=T0, price=Decimal(9), size=Decimal(1), provider="t")
    )
    worker.alert_bridge.on_event(
        Trade(
            symbol=home,
            ts=T0 + timedelta(seconds=1),
            price=Decimal(11),
            size=Decimal(1),
            provider="t",
        )
    )
    run(worker, worker.step_alerts)
    assert not AlertEvent.objects.exists()  # the other instrument is still at 9
    snapshots_put(snapshots=[snapshot("12", 5)])
    run(worker, worker.step_alerts, worker.step_alerts)
    [event] = AlertEvent.objects.all()
    assert event.rule_id == rule.pk and event.kind == "multi"
    assert event.ts == T0 + timedelta(seconds=5)
    run(worker, worker.step_alerts)
    assert AlertEvent.objects.count() == 1


@pytest.mark.transactional
def test_worker_hands_anomalies_to_the_engine(instruments, user, make_worker):
    from dataclasses import dataclass

    from alerts.models import AlertEvent
    from alerts.services import alert_rule_create

    @dataclass(frozen=True)
    class Anomaly:
        symbol: str
        kind: str
        ts: datetime
        score: float = 8.0
        value: float = 0.0
        baseline: float = 0.0
        direction: str = "up"
        explain: str = "8 MADs"

    alert_rule_create(
        owner=user,
        instrument=instruments["AAPL"],
        kind="anomaly",
        anomaly="return_spike",
        cooldown_seconds=0,
    )
    worker, _ = make_worker()
    engine = AlertEngine()
    engine.reload()
    worker.alert_engine = engine
    worker.alert_bridge.on_anomaly(Anomaly("AAPL", "return_spike", T0))
    run(worker, worker.step_alerts)
    [event] = AlertEvent.objects.all()
    assert event.message == "AAPL return spike: 8 MADs"
