"""The channels page and the rule form's "Deliver to": a user sees, tests
and uses only their own channels; secrets are shown once, then masked."""

from __future__ import annotations

import pytest

from alerts.channel_services import channel_create
from alerts.models import AlertRule, DeliveryChannel
from alerts.services import alert_events_record
from alerts.tasks import delivery_send
from tests.alerts.receivers import Answer, Receiver, fired
from tests.factories import AlertRuleFactory, RuleFormFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True


def test_channels_page_requires_login(client):
    response = client.get("/alerts/channels/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_add_a_webhook_secret_shown_once_then_masked(client, user):
    client.force_login(user)
    url = "http://127.0.0.1:9/hooks/abcdef-token-9876"
    response = client.post(
        "/alerts/channels/", {"name": "Algo", "kind": "webhook", "url": url}
    )
    assert response.status_code == 200
    channel = DeliveryChannel.objects.get(owner=user)
    page = response.content.decode()
    assert "shown only now" in page and channel.secret in page
    assert len(channel.secret) >= 32
    later = client.get("/alerts/channels/").content.decode()
    assert channel.secret not in later
    assert "abcdef-token" not in later and "http://127.0.0.1:9/…9876" in later
    # Editing with blank secret fields keeps the saved ones.
    response = client.post(
        f"/alerts/channels/{channel.pk}/edit",
        {"name": "Algo desk", "kind": "webhook", "url": "", "secret": ""},
    )
    assert response.status_code == 302
    saved = DeliveryChannel.objects.get(pk=channel.pk)
    assert saved.name == "Algo desk" and saved.url == url
    assert saved.secret == channel.secret


def test_bad_channels_are_shown_back(client, user, settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = False
    client.force_login(user)
    response = client.post(
        "/alerts/channels/",
        {"name": "Mine", "kind": "webhook", "url": "http://127.0.0.1:8000/x"},
    )
    assert response.status_code == 400
    assert "loopback, private, link-local or reserved" in response.content.decode()
    response = client.post(
        "/alerts/channels/",
        {"name": "TG", "kind": "telegram", "secret": "nope", "chat_id": "x y"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "bot token" in page and "numeric chat id" in page
    assert not DeliveryChannel.objects.exists()


def test_send_test_shows_the_result(client, user):
    client.force_login(user)
    with Receiver([Answer(200), Answer(404, b"unknown hook")]) as receiver:
        channel = channel_create(
            owner=user, name="hook", kind="webhook", url=receiver.url
        )
        ok = client.post(f"/alerts/channels/{channel.pk}/test", follow=True)
        bad = client.post(f"/alerts/channels/{channel.pk}/test", follow=True)
    assert "Test message delivered to hook" in ok.content.decode()
    assert receiver.requests[0].json()["type"] == "test"
    assert "Test message to hook failed: HTTP 404: unknown hook (permanent)" in (
        bad.content.decode()
    )
    channel.refresh_from_db()
    assert channel.consecutive_failures == 0 and channel.enabled  # tests don't count


def test_a_user_cannot_see_or_use_another_users_channel(
    client, user, other_user, instruments
):
    theirs = channel_create(
        owner=other_user, name="Rival hook", kind="webhook", url="http://127.0.0.1:9/"
    )
    mine = channel_create(
        owner=user, name="My hook", kind="webhook", url="http://127.0.0.1:9/"
    )
    client.force_login(user)
    page = client.get("/alerts/channels/").content.decode()
    assert "My hook" in page and "Rival hook" not in page
    for action in ("edit", "test", "toggle", "delete"):
        method = client.get if action == "edit" else client.post
        assert method(f"/alerts/channels/{theirs.pk}/{action}").status_code == 404
    theirs.refresh_from_db()
    assert theirs.enabled and theirs.name == "Rival hook"
    # The rule form offers only mine, and refuses theirs if posted.
    form = client.get("/alerts/new").content.decode()
    assert "Deliver to" in form and "My hook" in form and "Rival hook" not in form
    response = client.post("/alerts/new", RuleFormFactory(channels=[theirs.pk]))
    assert response.status_code == 400
    assert not AlertRule.objects.exists()
    response = client.post("/alerts/new", RuleFormFactory(channels=[mine.pk]))
    assert response.status_code == 302
    assert list(AlertRule.objects.get().channels.all()) == [mine]
    with pytest.raises(Exception, match="your own channels"):
        AlertRuleFactory(
            owner=user, instrument=instruments["MSFT"], level=10, channels=[theirs]
        )


def test_history_lists_each_alerts_deliveries(client, user, instruments):
    with Receiver([Answer(404, b"no such hook")]) as receiver:
        channel = channel_create(
            owner=user, name="Desk hook", kind="webhook", url=receiver.url
        )
        rule = AlertRuleFactory(
            owner=user, instrument=instruments["AAPL"], channels=[channel]
        )
        [event] = alert_events_record(fired=[fired(rule)], send=False)
        delivery_send.fn(event.deliveries.get().pk)
    client.force_login(user)
    page = client.get("/alerts/").content.decode()
    assert "Desk hook" in page
    assert 'data-status="failed"' in page
    assert "1 attempt" in page and "HTTP 404: no such hook" in page


def test_admin_shows_channel_state_never_its_secrets(client, user, staff_user):
    channel = channel_create(
        owner=user,
        name="Desk",
        kind="webhook",
        url="http://127.0.0.1:9/hooks/very-secret-path",
        secret="admin-must-not-see-this-0123",
    )
    client.force_login(staff_user)
    for url in (
        "/admin/alerts/deliverychannel/",
        f"/admin/alerts/deliverychannel/{channel.pk}/change/",
    ):
        page = client.get(url).content.decode()
        assert "Desk" in page
        assert "very-secret-path" not in page and "admin-must-not-see" not in page
