"""Fired alerts are stored, reach only their owner's group, and email on request."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

import dramatiq
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core import mail
from dramatiq.brokers.redis import RedisBroker

from alerts.engine import AlertEngine
from alerts.models import AlertEvent
from alerts.services import alert_events_record
from alerts.tasks import delivery_send
from core.groups import user_group
from core.redis import key, redis_client
from tests.alerts.helpers import feed, trade
from tests.factories import AlertRuleFactory


def fire_for(user, instrument, level: int, **fields):
    rule = AlertRuleFactory(
        owner=user, instrument=instrument, level=level, cooldown_seconds=0, **fields
    )
    engine = AlertEngine(symbols={instrument.symbol})
    engine.reload()
    fired = feed(
        engine,
        [
            trade(instrument.symbol, level - 1, 0),
            trade(instrument.symbol, level + 1, 1),
        ],
    )
    assert len(fired) == 1
    return rule, fired


@pytest.mark.transactional
def test_alert_reaches_only_its_owner_group(user, other_user, instruments):
    rule, fired = fire_for(user, instruments["AAPL"], 150, note="take profit")

    async def scenario():
        layer = get_channel_layer()
        mine = await layer.new_channel()
        theirs = await layer.new_channel()
        await layer.group_add(user_group(user.pk), mine)
        await layer.group_add(user_group(other_user.pk), theirs)
        events = await sync_to_async(alert_events_record)(fired=fired)
        message = await asyncio.wait_for(layer.receive(mine), timeout=5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(theirs), timeout=0.5)
        await layer.group_discard(user_group(user.pk), mine)
        await layer.group_discard(user_group(other_user.pk), theirs)
        return events, message

    events, message = async_to_sync(scenario)()
    assert message["type"] == "alert.fired"
    alert = message["alert"]
    assert alert["id"] == events[0].pk
    assert alert["rule_id"] == rule.pk
    assert alert["symbol"] == "AAPL"
    assert alert["level"] == "150"
    assert alert["price"] == "151"
    assert alert["note"] == "take profit"
    assert alert["seen"] is False
    assert "crossed above 150" in alert["message"]
    stored = AlertEvent.objects.get()
    assert stored.owner == user and stored.rule == rule and stored.seen_at is None
    assert str(stored.price) == "151.00000000"
    assert stored.values["level"] == 150.0


@pytest.mark.transactional
def test_alert_recorded_on_a_worker_thread_reaches_the_owner(user, instruments):
    """How the stream worker calls it: on its database thread (no event loop
    there), while the owner's browser listens elsewhere."""
    _rule, fired = fire_for(user, instruments["NVDA"], 900)

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(user_group(user.pk), channel)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: alert_events_record(fired=fired))
        received = await asyncio.wait_for(layer.receive(channel), timeout=5)
        await layer.group_discard(user_group(user.pk), channel)
        return received

    assert async_to_sync(scenario)()["alert"]["symbol"] == "NVDA"


@pytest.mark.transactional
def test_messages_can_be_sent_by_the_caller(user, instruments):
    """send=False leaves publishing to an asyncio caller."""
    from alerts.services import alert_event_messages

    _rule, fired = fire_for(user, instruments["MSFT"], 400)

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(user_group(user.pk), channel)
        receiving = asyncio.ensure_future(layer.receive(channel))
        events = await sync_to_async(alert_events_record)(fired=fired, send=False)
        await asyncio.sleep(0.3)
        assert not receiving.done(), "send=False must not publish"
        for group, message in await sync_to_async(alert_event_messages)(events=events):
            await layer.group_send(group, message)
        received = await asyncio.wait_for(receiving, timeout=5)
        await layer.group_discard(user_group(user.pk), channel)
        return received

    assert async_to_sync(scenario)()["alert"]["symbol"] == "MSFT"


@pytest.mark.transactional
def test_email_is_enqueued_and_sent_when_asked(user, instruments):
    user.email = "trader@example.com"
    user.save()
    _rule, fired = fire_for(user, instruments["AAPL"], 150, notify_email=True)
    client = redis_client()
    before = client.llen(key("dramatiq", "alerts"))
    [event] = alert_events_record(fired=fired, send=False)
    assert client.llen(key("dramatiq", "alerts")) == before + 1
    delivery = event.deliveries.get()
    delivery_send.fn(delivery.pk)
    delivery_send.fn(delivery.pk)  # idempotent: one email
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["trader@example.com"]
    assert "AAPL crossed above 150" in mail.outbox[0].subject
    event.refresh_from_db()
    assert event.emailed_at is not None


@pytest.mark.transactional
def test_no_email_without_the_flag(user, instruments):
    user.email = "trader@example.com"
    user.save()
    _rule, fired = fire_for(user, instruments["AAPL"], 150)
    before = redis_client().llen(key("dramatiq", "alerts"))
    alert_events_record(fired=fired, send=False)
    assert redis_client().llen(key("dramatiq", "alerts")) == before


@pytest.mark.transactional
def test_alert_of_a_deleted_rule_is_still_stored(user, instruments):
    rule, fired = fire_for(user, instruments["AAPL"], 150)
    rule.delete()
    [event] = alert_events_record(fired=fired, send=False)
    assert event.rule_id is None
    assert AlertEvent.objects.filter(owner=user).count() == 1


@contextmanager
def broker_away():
    """Dramatiq's Redis is away (a broker on a port where nothing listens)."""
    working = dramatiq.get_broker()
    away = RedisBroker(url="redis://127.0.0.1:9/0")
    for name in working.get_declared_actors():
        working.get_actor(name).broker = away
    try:
        yield
    finally:
        for name in working.get_declared_actors():
            working.get_actor(name).broker = working


@pytest.mark.transactional
def test_emails_never_queued_while_redis_was_away_are_sent_later(user, instruments):
    from alerts.delivery import deliveries_reclaim
    from alerts.models import Delivery

    user.email = "trader@example.com"
    user.save()
    _rule, fired = fire_for(user, instruments["AAPL"], 150, notify_email=True)
    with broker_away():
        [event] = alert_events_record(fired=fired)  # recorded; the enqueue fails
    client = redis_client()
    assert client.llen(key("dramatiq", "alerts")) == 0
    delivery = event.deliveries.get()
    assert delivery.status == "pending"
    Delivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=delivery.next_attempt_at - timedelta(minutes=2)
    )
    assert deliveries_reclaim() == 1  # what the reclaimer thread runs
    assert deliveries_reclaim() == 0  # the message waits: not sent twice
    assert client.llen(key("dramatiq", "alerts")) == 1
    delivery_send.fn(delivery.pk)
    assert len(mail.outbox) == 1
    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 1
    assert deliveries_reclaim() == 0


@pytest.mark.transactional
def test_emails_not_sent_before_the_upgrade_become_deliveries(user, instruments):
    """The 0005 data step (run here on the current models): the old email
    job's unsent emails of the last day are handed to the reclaimer."""
    import importlib

    from django.apps import apps

    from alerts.delivery import deliveries_reclaim
    from alerts.models import Delivery

    migration = importlib.import_module("alerts.migrations.0005_delivery_channels")
    user.email = "trader@example.com"
    user.save()
    _rule, fired = fire_for(user, instruments["AAPL"], 150, notify_email=True)
    [event] = alert_events_record(fired=fired, send=False)
    event.deliveries.all().delete()  # as recorded before deliveries existed
    old = alert_events_record(
        fired=[replace(fired[0], key="old", ts=fired[0].ts + timedelta(seconds=1))],
        send=False,
    )[0]
    old.deliveries.all().delete()
    AlertEvent.objects.filter(pk=old.pk).update(
        created_at=old.created_at - timedelta(days=2)
    )

    migration.unsent_emails_to_deliveries(apps, None)

    [delivery] = Delivery.objects.all()
    assert delivery.event == event and delivery.channel is None
    Delivery.objects.update(
        next_attempt_at=delivery.next_attempt_at - timedelta(minutes=2)
    )
    assert deliveries_reclaim() == 1
    delivery_send.fn(delivery.pk)
    assert len(mail.outbox) == 1
