"""Logins, failed logins and logouts are recorded with IP and user agent; a
user sees their own security events at /preferences/security/ and nobody
else's."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import Action, AuditEvent, Source
from audit.services import audit_record
from tests.audit.conftest import BROWSER, events, one

pytestmark = pytest.mark.django_db

ATTACKER = "curl/8.5.0 (credential-stuffer)"


def test_failed_login_keeps_ip_user_agent_and_the_account_tried(client, user):
    response = client.post(
        "/login/",
        {"username": "trader", "password": "wrong"},
        REMOTE_ADDR="192.0.2.66",
        HTTP_USER_AGENT=ATTACKER,
    )
    assert response.status_code == 200  # the form again, with its error
    failed = one(action=Action.LOGIN_FAILED)
    assert (failed.ip, failed.user_agent) == ("192.0.2.66", ATTACKER)
    assert failed.source == Source.DASHBOARD
    assert failed.actor_id is None and failed.actor_username == "trader"
    assert failed.subject_id == user.pk
    assert "wrong" not in str(failed.before) + str(failed.after)


def test_failed_login_for_an_unknown_name_concerns_nobody(client, user):
    client.post(
        "/login/",
        {"username": "nobody-here", "password": "x"},
        REMOTE_ADDR="2001:db8::7",
    )
    failed = one(action=Action.LOGIN_FAILED)
    assert failed.subject_id is None
    assert (failed.actor_username, failed.object_repr) == ("nobody-here", "nobody-here")
    assert failed.ip == "2001:db8::7"


def test_login_and_logout(user):
    client = Client(HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="203.0.113.7")
    response = client.post("/login/", {"username": "trader", "password": "s3cret-pass"})
    assert response.status_code == 302
    login = one(action=Action.LOGIN)
    assert (login.actor_id, login.subject_id, login.source) == (
        user.pk,
        user.pk,
        Source.DASHBOARD,
    )
    assert (login.ip, login.user_agent) == ("203.0.113.7", BROWSER)
    client.post("/logout/")
    logout = one(action=Action.LOGOUT)
    assert (logout.actor_id, logout.ip) == (user.pk, "203.0.113.7")


def test_a_user_sees_only_their_own_security_events(client, user, other_user):
    client.post(
        "/login/",
        {"username": "trader", "password": "bad"},
        REMOTE_ADDR="192.0.2.66",
        HTTP_USER_AGENT=ATTACKER,
    )
    client.post(
        "/login/",
        {"username": "rival", "password": "bad"},
        REMOTE_ADDR="192.0.2.99",
        HTTP_USER_AGENT="RivalsAttacker/1",
    )
    user.set_password("a-new-long-passphrase")
    user.save()
    other_user.set_password("rivals-new-passphrase")
    other_user.save()
    # A data change is not a security event.
    from marketdata.services import watchlist_create

    watchlist_create(owner=user, name="Mine")

    mine = Client(HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="203.0.113.7")
    mine.post("/login/", {"username": "trader", "password": "a-new-long-passphrase"})
    page = mine.get("/preferences/security/")
    assert page.status_code == 200
    body = page.content.decode()
    shown = [event.action for event in page.context["page"].object_list]
    assert shown == [Action.LOGIN, Action.PASSWORD_CHANGED, Action.LOGIN_FAILED]
    assert "192.0.2.66" in body and "credential-stuffer" in body
    assert "192.0.2.99" not in body and "RivalsAttacker" not in body
    assert "Mine" not in body
    assert {e.subject_id for e in page.context["page"].object_list} == {user.pk}

    theirs = Client()
    theirs.force_login(other_user)
    body = theirs.get("/preferences/security/").content.decode()
    assert "192.0.2.99" in body and "192.0.2.66" not in body


def test_security_page_requires_login(client):
    response = client.get("/preferences/security/")
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Europe/Berlin", "2026-07-01 14:00:00 Berlin"),  # CEST, UTC+2
        # Events belong to no exchange: the desk's market clock, New York.
        ("exchange", "2026-07-01 08:00:00 New York"),
        # The browser's zone: UTC until static/js/format.js rewrites it.
        ("local", "2026-07-01 12:00:00 UTC"),
        ("UTC", "2026-07-01 12:00:00 UTC"),
    ],
)
def test_times_follow_the_display_zone(client, user, zone, shown):
    from datetime import UTC, datetime

    from preferences.services import preferences_update

    AuditEvent(
        at=datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
        action=Action.LOGIN,
        source=Source.DASHBOARD,
        subject=user,
        actor=user,
        actor_username="trader",
    ).save()
    preferences_update(user=user, time_zone=zone)
    client.force_login(user)
    body = client.get("/preferences/security/").content.decode()
    login_row = body[body.index('data-action="login"') :]
    assert (
        '<time datetime="2026-07-01T12:00:00+00:00" data-tz-exchange="America/New_York"'
        f' data-fmt="datetime">{shown}</time>'
    ) in login_row
    # The preferences page's recent list shows the same time the same way.
    page = client.get("/preferences/").content.decode()
    assert 'href="/preferences/security/"' in page
    assert f'data-fmt="datetime">{shown}</time>' in page


def test_recent_events_include_for_the_preferences_page(client, user):
    from django.template import Context, Template
    from django.test import RequestFactory

    audit_record(action=Action.LOGIN, actor=user, subject_id=user.pk, ip="192.0.2.1")
    request = RequestFactory().get("/preferences/")
    request.user = user
    html = Template("{% load audit_tags %}{% security_events_recent %}").render(
        Context({"request": request})
    )
    assert "Logged in" in html and "192.0.2.1" in html
    assert 'href="/preferences/security/"' in html
    assert len(events(action=Action.LOGIN)) == 1
