"""Past ALERT_DIGEST_THRESHOLD alerts within the window, a channel gets one
digest instead of one message per alert (email counts as a channel)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from alerts.channel_services import channel_create
from alerts.models import Delivery
from alerts.services import alert_events_record
from alerts.tasks import delivery_send
from tests.alerts.receivers import Receiver, fired
from tests.factories import AlertRuleFactory


@pytest.fixture(autouse=True)
def digest_settings(settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    settings.ALERT_DIGEST_THRESHOLD = 2
    settings.ALERT_DIGEST_WINDOW_SECONDS = 60
    return settings


def make_due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


@pytest.mark.transactional
def test_an_alert_storm_becomes_one_digest_per_channel(user, instruments, client):
    user.email = "trader@example.com"
    user.save()
    with Receiver() as receiver:
        hook = channel_create(
            owner=user, name="hook", kind="webhook", url=receiver.url + "/hook"
        )
        slack = channel_create(
            owner=user, name="Slack", kind="slack", url=receiver.url + "/slack"
        )
        rule = AlertRuleFactory(
            owner=user,
            instrument=instruments["AAPL"],
            cooldown_seconds=0,
            notify_email=True,
            channels=[hook, slack],
        )
        # Five alerts in two batches, as the stream worker records them.
        events = alert_events_record(
            fired=[fired(rule, seconds=i) for i in range(3)], send=False
        )
        events += alert_events_record(
            fired=[fired(rule, seconds=i) for i in range(3, 5)], send=False
        )
        for channel in (hook, slack, None):
            rows = Delivery.objects.filter(owner=user, channel=channel)
            single = rows.filter(event__isnull=False, parent__isnull=True)
            assert [d.event for d in single.order_by("id")] == events[:2]
            [digest] = rows.filter(event__isnull=True)
            assert digest.status == "pending"
            # Sent when its window ends, with whatever was folded in meanwhile.
            assert digest.next_attempt_at > timezone.now() + timedelta(seconds=50)
            folded = rows.filter(parent=digest).order_by("id")
            assert [d.event for d in folded] == events[2:]
            assert {d.status for d in folded} == {"folded"}

        for delivery in Delivery.objects.filter(
            parent__isnull=True, event__isnull=False
        ):
            delivery_send.fn(delivery.pk)
        for digest in Delivery.objects.filter(event__isnull=True):
            delivery_send.fn(digest.pk)  # not due yet: nothing happens
            assert Delivery.objects.get(pk=digest.pk).attempts == 0
            make_due(digest)
            delivery_send.fn(digest.pk)

    hook_bodies = [r.json() for r in receiver.requests if r.path == "/hook"]
    assert [b["type"] for b in hook_bodies] == ["alert", "alert", "digest"]
    digest_body = hook_bodies[2]
    assert digest_body["count"] == 3
    assert [a["id"] for a in digest_body["alerts"]] == [e.pk for e in events[2:]]
    slack_texts = [r.json()["text"] for r in receiver.requests if r.path == "/slack"]
    assert len(slack_texts) == 3
    assert "3 more alerts within 60 s" in slack_texts[2]
    assert len(mail.outbox) == 3
    assert "Digest: 3 more alerts" in mail.outbox[2].subject
    assert mail.outbox[2].body.count("AAPL crossed above 150") == 3
    assert set(
        Delivery.objects.exclude(status="folded").values_list("status", flat=True)
    ) == {"sent"}

    # The history shows each folded alert's digest and how it went.
    client.force_login(user)
    page = client.get("/alerts/").content.decode()
    assert page.count("in a digest") == 9  # 3 alerts × 3 channels
    assert 'data-status="sent"' in page


@pytest.mark.transactional
def test_counting_starts_again_after_the_window(user, instruments):
    with Receiver() as receiver:
        hook = channel_create(owner=user, name="hook", kind="webhook", url=receiver.url)
        rule = AlertRuleFactory(
            owner=user,
            instrument=instruments["AAPL"],
            cooldown_seconds=0,
            channels=[hook],
        )
        alert_events_record(
            fired=[fired(rule, seconds=i) for i in range(2)], send=False
        )
        # The window has passed since those two.
        Delivery.objects.update(created_at=timezone.now() - timedelta(seconds=61))
        [event] = alert_events_record(fired=[fired(rule, seconds=9)], send=False)

    delivery = event.deliveries.get()
    assert delivery.parent is None and delivery.status == "pending"
    assert not Delivery.objects.filter(event__isnull=True).exists()
