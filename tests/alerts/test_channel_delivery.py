"""Alerts delivered to webhooks, Slack, Discord and Telegram over real
loopback sockets: signatures, retries, permanent errors, slow endpoints,
channels that keep failing, and Telegram's API against a local fake."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts.channel_services import channel_create, channel_set_enabled
from alerts.models import Delivery, DeliveryChannel
from alerts.services import alert_events_record
from alerts.tasks import delivery_send
from core.redis import key, redis_client
from tests.alerts.receivers import (
    Answer,
    Receiver,
    fired,
    verify_signature,
    wait_for,
)
from tests.factories import AlertRuleFactory

SECRET = "s3cret-signing-key-0123456789"
BOT_TOKEN = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345"


@pytest.fixture(autouse=True)
def delivery_settings(settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True  # the receivers are on loopback
    settings.ALERT_DELIVERY_BACKOFF_SECONDS = 0.05
    settings.ALERT_DELIVERY_TIMEOUT = 5.0
    settings.ALERT_DIGEST_THRESHOLD = 100
    return settings


def webhook(user, url, **fields):
    fields.setdefault("name", "hook")
    fields.setdefault("kind", "webhook")
    fields.setdefault("secret", SECRET)
    return channel_create(owner=user, url=url, **fields)


def rule_to(user, instrument, *channels, **fields):
    return AlertRuleFactory(
        owner=user,
        instrument=instrument,
        cooldown_seconds=0,
        channels=list(channels),
        **fields,
    )


def delayed_messages() -> int:
    return redis_client().hlen(key("dramatiq", "alerts.DQ") + ".msgs")


@pytest.mark.transactional
def test_webhook_delivered_by_the_worker_with_a_valid_signature(
    user, instruments, delivery_worker
):
    with Receiver() as receiver:
        channel = webhook(user, receiver.url + "/hooks/tapeline")
        rule = rule_to(user, instruments["AAPL"], channel, note="take profit")
        [event] = alert_events_record(fired=[fired(rule)], send=False)

        delivery = event.deliveries.get()
        wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "sent")

    [request] = receiver.requests
    assert request.path == "/hooks/tapeline"
    assert verify_signature(request, SECRET)
    assert not verify_signature(request, "another-secret-entirely")
    assert request.headers["X-Tapeline-Delivery"] == str(delivery.pk)
    body = request.json()
    assert body["type"] == "alert"
    assert body["alert"]["symbol"] == "AAPL"
    assert body["alert"]["id"] == event.pk
    assert body["alert"]["note"] == "take profit"
    assert "crossed above 150" in body["alert"]["message"]
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.delivered_at is not None
    assert delivery.last_error == ""


@pytest.mark.transactional
def test_retried_after_500s_then_delivered(user, instruments, delivery_worker):
    script = [Answer(500, b"upstream down"), Answer(503), Answer(200)]
    with Receiver(script) as receiver:
        channel = webhook(user, receiver.url)
        rule = rule_to(user, instruments["AAPL"], channel)
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        delivery = event.deliveries.get()
        wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "sent")

    delivery.refresh_from_db()
    assert delivery.attempts == 3
    assert len(receiver.requests) == 3
    # The same delivery each time, each attempt signed afresh.
    assert {r.headers["X-Tapeline-Delivery"] for r in receiver.requests} == {
        str(delivery.pk)
    }
    assert all(verify_signature(r, SECRET) for r in receiver.requests)
    channel.refresh_from_db()
    assert channel.consecutive_failures == 0 and channel.enabled


@pytest.mark.transactional
def test_a_failed_attempt_is_recorded_with_its_back_off(user, instruments):
    with Receiver([Answer(500, b"upstream down")]) as receiver:
        channel = webhook(user, receiver.url)
        rule = rule_to(user, instruments["AAPL"], channel)
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        delivery = event.deliveries.get()
        before = delayed_messages()
        delivery_send.fn(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error == "HTTP 500: upstream down"
    assert delivery.next_attempt_at > timezone.now() - timedelta(seconds=1)
    assert delayed_messages() == before + 1  # the retry waits its back-off
    channel.refresh_from_db()
    assert channel.consecutive_failures == 1


@pytest.mark.transactional
def test_permanent_4xx_is_not_retried(user, instruments):
    with Receiver([Answer(404, b"no such hook")]) as receiver:
        channel = webhook(user, receiver.url)
        rule = rule_to(user, instruments["AAPL"], channel)
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        delivery = event.deliveries.get()
        before = delayed_messages()
        delivery_send.fn(delivery.pk)
        delivery_send.fn(delivery.pk)  # a duplicate message does nothing

    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 1
    assert delivery.last_error == "HTTP 404: no such hook"
    assert len(receiver.requests) == 1
    assert delayed_messages() == before


@pytest.mark.transactional
def test_429_waits_at_least_its_retry_after(user, instruments):
    with Receiver([Answer(429, headers={"Retry-After": "120"})]) as receiver:
        channel = webhook(user, receiver.url)
        rule = rule_to(user, instruments["AAPL"], channel)
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        delivery = event.deliveries.get()
        delivery_send.fn(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert delivery.next_attempt_at >= timezone.now() + timedelta(seconds=100)
    delivery_send.fn(delivery.pk)  # an early message does not jump the queue
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and len(receiver.requests) == 1


@pytest.mark.transactional
def test_slow_endpoint_times_out_then_is_retried(user, instruments, settings):
    settings.ALERT_DELIVERY_TIMEOUT = 0.5
    with Receiver([Answer(200, delay=3)]) as receiver:
        channel = webhook(user, receiver.url)
        rule = rule_to(user, instruments["AAPL"], channel)
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        delivery = event.deliveries.get()
        delivery_send.fn(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == "pending"
        assert delivery.last_error == "timed out after 0.5 s"
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        delivery_send.fn(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == "sent" and delivery.attempts == 2


@pytest.mark.transactional
def test_a_slow_endpoint_does_not_hold_up_another_channel(
    user, instruments, delivery_worker, settings
):
    """The slow endpoint answers only once the other channel's delivery is
    recorded as sent; delivered one after the other, the slow one would
    time out first."""
    settings.ALERT_DELIVERY_TIMEOUT = 10.0
    release = threading.Event()
    with Receiver([Answer(200, hold=release)]) as slow, Receiver() as fast:
        slow_channel = webhook(user, slow.url, name="slow")
        fast_channel = webhook(user, fast.url, name="fast")
        rule = rule_to(user, instruments["AAPL"], slow_channel, fast_channel)
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        wait_for(lambda: slow.requests, what="the slow endpoint's request")
        fast_delivery = event.deliveries.get(channel=fast_channel)
        wait_for(lambda: Delivery.objects.get(pk=fast_delivery.pk).status == "sent")
        release.set()
        slow_delivery = event.deliveries.get(channel=slow_channel)
        wait_for(lambda: Delivery.objects.get(pk=slow_delivery.pk).status == "sent")

    slow_delivery.refresh_from_db()
    assert slow_delivery.attempts == 1 and slow_delivery.last_error == ""


@pytest.mark.transactional
def test_a_channel_that_keeps_failing_is_disabled_with_a_notice(
    user, instruments, client, settings
):
    settings.ALERT_CHANNEL_MAX_FAILURES = 3
    user.email = "trader@example.com"
    user.save()
    with Receiver(default=Answer(410, b"gone")) as receiver:
        channel = webhook(user, receiver.url, name="Ops hook")
        rule = rule_to(user, instruments["AAPL"], channel)
        events = alert_events_record(
            fired=[fired(rule, seconds=i) for i in range(4)], send=False
        )
        ids = [e.deliveries.get().pk for e in events]
        for delivery_id in ids[:3]:
            delivery_send.fn(delivery_id)
        delivery_send.fn(ids[3])

    channel.refresh_from_db()
    assert not channel.enabled and channel.disabled_at is not None
    assert "3 failed deliveries in a row" in channel.disabled_reason
    assert len(receiver.requests) == 3  # the fourth was abandoned, not sent
    fourth = Delivery.objects.get(pk=ids[3])
    assert fourth.status == "abandoned" and fourth.last_error == "channel disabled"
    [notice] = mail.outbox
    assert notice.to == ["trader@example.com"]
    assert "Ops hook" in notice.subject and "turned off" in notice.subject
    # In the app: a notice on the alerts page, and no new deliveries there.
    client.force_login(user)
    page = client.get("/alerts/").content.decode()
    assert "Delivery channel <strong>Ops hook</strong> was turned off" in page
    [later] = alert_events_record(fired=[fired(rule, seconds=9)], send=False)
    assert not later.deliveries.exists()
    # Turned back on by its owner: the notice goes, deliveries resume.
    channel_set_enabled(channel=channel, enabled=True)
    assert "was turned off" not in client.get("/alerts/").content.decode()
    [again] = alert_events_record(fired=[fired(rule, seconds=10)], send=False)
    assert again.deliveries.get().channel == channel


@pytest.mark.transactional
def test_slack_and_discord_bodies(user, instruments):
    with Receiver() as receiver:
        slack = channel_create(
            owner=user, name="Slack", kind="slack", url=receiver.url + "/slack"
        )
        discord = channel_create(
            owner=user, name="Discord", kind="discord", url=receiver.url + "/discord"
        )
        rule = rule_to(user, instruments["AAPL"], slack, discord, note="@everyone <b>")
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        for delivery in event.deliveries.all():
            delivery_send.fn(delivery.pk)

    bodies = {r.path: r.json() for r in receiver.requests}
    slack_body, discord_body = bodies["/slack"], bodies["/discord"]
    assert slack_body["text"].startswith("[Tapeline] AAPL crossed above 150")
    [block] = slack_body["blocks"]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    assert "Note: @everyone &lt;b&gt;" in block["text"]["text"]  # escaped
    assert "X-Tapeline-Signature" not in receiver.requests[0].headers
    assert discord_body["content"].startswith("[Tapeline] AAPL crossed above 150")
    [embed] = discord_body["embeds"]
    assert "Instrument: AAPL" in embed["description"]
    assert discord_body["allowed_mentions"] == {"parse": []}  # nobody pinged
    assert set(event.deliveries.values_list("status", flat=True)) == {"sent"}


@pytest.mark.transactional
def test_telegram_against_a_local_fake(user, instruments, settings):
    ok = b'{"ok":true,"result":{"message_id":7}}'
    blocked = (
        b'{"ok":false,"error_code":403,'
        b'"description":"Forbidden: bot was blocked by the user"}'
    )
    with Receiver([Answer(200, ok), Answer(403, blocked)]) as fake:
        settings.TELEGRAM_API_BASE = fake.url
        channel = channel_create(
            owner=user, name="TG", kind="telegram", secret=BOT_TOKEN, chat_id="-100123"
        )
        rule = rule_to(user, instruments["AAPL"], channel)
        first, second = alert_events_record(
            fired=[fired(rule), fired(rule, seconds=5)], send=False
        )
        delivery_send.fn(first.deliveries.get().pk)
        delivery_send.fn(second.deliveries.get().pk)

    request = fake.requests[0]
    assert request.path == f"/bot{BOT_TOKEN}/sendMessage"
    body = request.json()
    assert body["chat_id"] == "-100123"
    assert body["text"].startswith("AAPL crossed above 150")
    assert first.deliveries.get().status == "sent"
    refused = second.deliveries.get()
    assert refused.status == "failed"  # 403: not retried
    assert refused.last_error == "Telegram 403: Forbidden: bot was blocked by the user"
    assert BOT_TOKEN not in refused.last_error


@pytest.mark.transactional
def test_telegram_connection_errors_never_show_the_token(user, instruments, settings):
    settings.TELEGRAM_API_BASE = "http://127.0.0.1:9"  # nothing listens
    channel = channel_create(
        owner=user, name="TG", kind="telegram", secret=BOT_TOKEN, chat_id="42"
    )
    rule = rule_to(user, instruments["AAPL"], channel)
    [event] = alert_events_record(fired=[fired(rule)], send=False)
    delivery = event.deliveries.get()
    delivery_send.fn(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "pending" and "connection failed" in delivery.last_error
    assert BOT_TOKEN not in delivery.last_error
    assert BOT_TOKEN.split(":")[1] not in delivery.last_error


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
    ],
)
@pytest.mark.django_db
def test_private_addresses_refused_at_save(user, settings, url):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(ValidationError) as error:
        webhook(user, url)
    assert "loopback, private, link-local or reserved" in str(error.value)
    assert not DeliveryChannel.objects.exists()


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "file:///etc/passwd", "javascript:alert(1)"]
)
@pytest.mark.django_db
def test_non_http_addresses_refused(user, url):
    with pytest.raises(ValidationError) as error:
        webhook(user, url)
    assert "must start with http:// or https://" in str(error.value)


@pytest.mark.transactional
def test_private_addresses_refused_at_send_time_too(user, instruments, settings):
    """Saved while allowed (or while DNS pointed elsewhere): checked again."""
    with Receiver() as receiver:
        channel = webhook(user, receiver.url)
        rule = rule_to(user, instruments["AAPL"], channel)
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        settings.ALERT_WEBHOOK_ALLOW_PRIVATE = False
        delivery = event.deliveries.get()
        delivery_send.fn(delivery.pk)

    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "127.0.0.1" in delivery.last_error and "refused" not in delivery.status


@pytest.mark.transactional
def test_a_hanging_endpoint_holds_at_most_its_slots(user, instruments, settings):
    """With ALERT_CHANNEL_CONCURRENCY=1, a second delivery to a channel whose
    first is still waiting on its endpoint is put back for later (no attempt
    counted), while another channel's delivery goes at once."""
    settings.ALERT_CHANNEL_CONCURRENCY = 1
    release = threading.Event()
    with Receiver(default=Answer(hold=release)) as slow, Receiver() as fast:
        slow_channel = webhook(user, slow.url, name="slow")
        fast_channel = webhook(user, fast.url, name="fast")
        slow_rule = rule_to(user, instruments["AAPL"], slow_channel)
        fast_rule = rule_to(user, instruments["MSFT"], fast_channel)
        first, second = alert_events_record(
            fired=[fired(slow_rule), fired(slow_rule, seconds=1)], send=False
        )
        [other] = alert_events_record(fired=[fired(fast_rule)], send=False)
        hanging = threading.Thread(
            target=delivery_send.fn, args=(first.deliveries.get().pk,)
        )
        hanging.start()
        wait_for(lambda: slow.requests, what="the hanging request")
        before = delayed_messages()
        delivery_send.fn(second.deliveries.get().pk)
        delivery_send.fn(other.deliveries.get().pk)
        queued = second.deliveries.get()
        assert queued.status == "pending" and queued.attempts == 0
        assert delayed_messages() == before + 1  # it comes back in a moment
        assert other.deliveries.get().status == "sent"
        release.set()
        hanging.join(30)
        delivery_send.fn(queued.pk)  # the slot is free again

    assert first.deliveries.get().status == "sent"
    assert Delivery.objects.get(pk=queued.pk).status == "sent"


@pytest.mark.transactional
def test_deliveries_not_queued_while_redis_was_away_are_sent_later(user, instruments):
    from alerts.delivery import deliveries_reclaim
    from tests.alerts.test_delivery import broker_away

    with Receiver() as receiver:
        channels = [webhook(user, receiver.url, name=f"hook {i}") for i in range(2)]
        rule = rule_to(user, instruments["AAPL"], *channels)
        with broker_away():
            [event] = alert_events_record(fired=[fired(rule)])  # enqueue fails
        assert redis_client().llen(key("dramatiq", "alerts")) == 0
        assert set(event.deliveries.values_list("status", flat=True)) == {"pending"}
        Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=2))
        assert deliveries_reclaim() == 2
        assert redis_client().llen(key("dramatiq", "alerts")) == 2
        for delivery in event.deliveries.all():
            delivery_send.fn(delivery.pk)

    assert len(receiver.requests) == 2
    assert set(event.deliveries.values_list("status", flat=True)) == {"sent"}
