"""Rule changes (services, admin, plain ORM) reach a running engine within 2 s."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from alerts.engine import AlertEngine
from alerts.models import AlertRule
from alerts.services import alert_rule_delete, alert_rule_update
from tests.alerts.helpers import feed, trade
from tests.factories import AlertRuleFactory

pytestmark = pytest.mark.transactional


def changes_apply(engine: AlertEngine) -> None:
    """What `streaming.alerting.AlertBridge.step` does with rule changes."""
    changes = engine.fetch_changes()
    if changes is not None:
        engine.apply_changes(changes)


class RunningEngine:
    """An engine whose owner reads and applies rule changes in a loop, like
    the worker's alert step."""

    def __init__(self, symbols: set[str]) -> None:
        self.engine = AlertEngine(symbols=symbols)
        self.engine.reload()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                with self.lock:
                    changes_apply(self.engine)
                time.sleep(0.05)
        finally:
            connection.close()

    def __enter__(self) -> RunningEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def wait_for(self, predicate, timeout: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self.engine):
                    return True
            time.sleep(0.02)
        return False

    def feed(self, events) -> list:
        with self.lock:
            return feed(self.engine, events)


def test_edit_through_admin_takes_effect_within_two_seconds(
    client, staff_user, user, instruments
):
    rule = AlertRuleFactory(
        owner=user, instrument=instruments["AAPL"], cooldown_seconds=0
    )
    client.force_login(staff_user)
    with RunningEngine({"AAPL"}) as running:
        assert running.feed([trade("AAPL", 139, 0)]) == []
        response = client.post(
            f"/admin/alerts/alertrule/{rule.pk}/change/",
            {
                "owner": user.pk,
                "instrument": instruments["AAPL"].pk,
                "kind": "price",
                "direction": "above",
                "level": "140",
                "hysteresis": "0",
                "timeframe": "",
                "ma_type": "",
                "cooldown_seconds": "0",
                "active": "on",
                "note": "lowered",
            },
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        assert running.wait_for(lambda e: e.rules[rule.pk].level == 140.0)
        fired = running.feed([trade("AAPL", 141, 1)])
    assert [f.rule_id for f in fired] == [rule.pk]
    assert fired[0].note == "lowered"


def test_new_rule_and_deletion_reach_the_engine(user, instruments):
    with RunningEngine({"AAPL"}) as running:
        running.feed([trade("AAPL", 99, 0)])
        rule = AlertRuleFactory(
            owner=user, instrument=instruments["AAPL"], level=100, cooldown_seconds=0
        )
        assert running.wait_for(lambda e: rule.pk in e.rules)
        assert len(running.feed([trade("AAPL", 101, 1)])) == 1
        rule_id = rule.pk
        alert_rule_delete(rule=rule)
        assert running.wait_for(lambda e: rule_id not in e.rules)
        assert running.feed([trade("AAPL", 99, 2), trade("AAPL", 101, 3)]) == []


def test_plain_orm_save_and_deactivation_reach_the_engine(user, instruments):
    rule = AlertRuleFactory(
        owner=user,
        instrument=instruments["AAPL"],
        direction="below",
        level=100,
        cooldown_seconds=0,
    )
    with RunningEngine({"AAPL"}) as running:
        running.feed([trade("AAPL", 105, 0)])
        rule.level = Decimal("104")
        rule.save()
        assert running.wait_for(lambda e: e.rules[rule.pk].level == 104.0)
        assert len(running.feed([trade("AAPL", 103.5, 1)])) == 1
        alert_rule_update(rule=rule, active=False)
        assert running.wait_for(lambda e: rule.pk not in e.rules)


def test_engine_ignores_rules_of_other_shards(user, instruments):
    AlertRuleFactory(owner=user, instrument=instruments["MSFT"], level=10)
    engine = AlertEngine(symbols={"AAPL"})
    engine.reload()
    assert engine.rules == {}
    everything = AlertEngine(symbols=None)
    everything.reload()
    assert len(everything.rules) == 1


def test_redis_flush_falls_back_to_a_full_reload(user, instruments):
    from core.redis import redis_client

    engine = AlertEngine(symbols={"AAPL"})
    engine.reload()
    rule = AlertRuleFactory(owner=user, instrument=instruments["AAPL"], level=10)
    redis_client().flushdb()
    changes_apply(engine)
    # Counter gone: the next change starts again from 1, below the engine's
    # version; the engine must notice and reload everything.
    AlertRule.objects.filter(pk=rule.pk).update(level=Decimal("11"))
    alert_rule_update(rule=AlertRule.objects.get(pk=rule.pk), note="x")
    changes_apply(engine)
    assert engine.rules[rule.pk].level == 11.0


def test_moving_a_rule_to_another_instrument_moves_it_in_the_engine(user, instruments):
    rule = AlertRuleFactory(
        owner=user, instrument=instruments["AAPL"], level=100, cooldown_seconds=0
    )
    engine = AlertEngine(symbols=None)
    engine.reload()
    feed(engine, [trade("AAPL", 99, 0), trade("MSFT", 99, 0)])
    alert_rule_update(rule=rule, instrument=instruments["MSFT"])
    changes_apply(engine)
    assert feed(engine, [trade("AAPL", 101, 1)]) == []
    assert [f.symbol for f in feed(engine, [trade("MSFT", 101, 2)])] == ["MSFT"]
    shard = AlertEngine(symbols={"AAPL"})
    alert_rule_update(rule=rule, instrument=instruments["AAPL"])
    shard.reload()
    assert rule.pk in shard.rules
    alert_rule_update(rule=rule, instrument=instruments["MSFT"])
    changes_apply(shard)
    assert rule.pk not in shard.rules
