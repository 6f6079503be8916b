"""Notification choices and quiet hours hold back the toast and the email of
a fired alert, never its record."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.core import mail
from django.utils import timezone

from alerts.delivery import deliveries_reclaim
from alerts.models import AlertEvent
from alerts.services import alert_events_record
from alerts.tasks import delivery_send
from core.groups import user_group
from core.redis import key, redis_client
from preferences.selectors import in_quiet_hours, preferences_get
from preferences.services import preferences_update
from tests.alerts.test_delivery import fire_for

BERLIN = ZoneInfo("Europe/Berlin")


def record_and_receive(user, fired):
    """Record the alerts as the stream worker does; the owner's browser
    message and how many email jobs were queued."""

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(user_group(user.pk), channel)
        await sync_to_async(alert_events_record)(fired=fired)
        message = await asyncio.wait_for(layer.receive(channel), timeout=5)
        await layer.group_discard(user_group(user.pk), channel)
        return message

    before = redis_client().llen(key("dramatiq", "alerts"))
    message = async_to_sync(scenario)()
    return message["alert"], redis_client().llen(key("dramatiq", "alerts")) - before


def quiet_around_now(user, *, covering: bool) -> None:
    """Quiet hours in Berlin that cover now (or end an hour before now)."""
    now = timezone.now().astimezone(BERLIN)
    if covering:
        start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    else:
        start, end = now - timedelta(hours=3), now - timedelta(hours=1)
    preferences_update(
        user=user,
        quiet_start=start.time().replace(second=0, microsecond=0),
        quiet_end=end.time().replace(second=0, microsecond=0),
        quiet_time_zone="Europe/Berlin",
    )


@pytest.fixture
def trader(user):
    user.email = "trader@example.com"
    user.save()
    return user


@pytest.mark.transactional
def test_in_quiet_hours_no_toast_no_email_but_the_alert_is_recorded(
    trader, instruments
):
    quiet_around_now(trader, covering=True)
    _rule, fired = fire_for(trader, instruments["AAPL"], 150, notify_email=True)

    alert, queued = record_and_receive(trader, fired)

    # The page still hears of it (unseen count, history) but pops nothing up.
    assert alert["toast"] is False and alert["quiet"] is True
    assert queued == 0
    event = AlertEvent.objects.get(owner=trader)
    assert event.quiet and "crossed above 150" in event.message
    # No delivery to send, now or by the reclaimer's later pass.
    assert not event.deliveries.exists()
    assert deliveries_reclaim() == 0
    assert mail.outbox == []


@pytest.mark.transactional
def test_outside_quiet_hours_toast_and_email_as_usual(trader, instruments):
    quiet_around_now(trader, covering=False)
    _rule, fired = fire_for(trader, instruments["AAPL"], 150, notify_email=True)

    alert, queued = record_and_receive(trader, fired)

    assert alert["toast"] is True and alert["quiet"] is False
    assert queued == 1
    delivery = AlertEvent.objects.get(owner=trader).deliveries.get()
    delivery_send.fn(delivery.pk)
    assert len(mail.outbox) == 1


@pytest.mark.transactional
def test_toasts_and_emails_turned_off(trader, instruments):
    preferences_update(user=trader, notify_toast=False, notify_email=False)
    _rule, fired = fire_for(trader, instruments["AAPL"], 150, notify_email=True)

    alert, queued = record_and_receive(trader, fired)

    assert alert["toast"] is False and alert["quiet"] is False
    assert queued == 0
    event = AlertEvent.objects.get(owner=trader)
    assert not event.deliveries.exists()
    assert deliveries_reclaim() == 0
    assert mail.outbox == []


@pytest.mark.transactional
def test_emails_turned_off_after_the_alert_was_queued(trader, instruments):
    _rule, fired = fire_for(trader, instruments["AAPL"], 150, notify_email=True)
    [event] = alert_events_record(fired=fired, send=False)
    preferences_update(user=trader, notify_email=False)

    delivery = event.deliveries.get()
    delivery_send.fn(delivery.pk)

    assert mail.outbox == []
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.last_error == "alert emails are turned off"


@pytest.mark.django_db
def test_quiet_hours_span_midnight_in_their_own_zone(user):
    preferences_update(
        user=user,
        quiet_start=time(22, 0),
        quiet_end=time(7, 0),
        quiet_time_zone="Europe/Berlin",
    )
    preferences = preferences_get(user=user)

    def at(hour, minute=0):  # a winter day: Berlin is UTC+1
        return datetime(2026, 1, 15, hour, minute, tzinfo=BERLIN).astimezone(UTC)

    assert in_quiet_hours(preferences, at=at(23, 30))
    assert in_quiet_hours(preferences, at=at(6, 59))
    assert not in_quiet_hours(preferences, at=at(7, 0))
    assert not in_quiet_hours(preferences, at=at(21, 59))
    # 21:30 UTC is 22:30 in Berlin: quiet there, whatever the server's zone.
    assert in_quiet_hours(preferences, at=datetime(2026, 1, 15, 21, 30, tzinfo=UTC))
