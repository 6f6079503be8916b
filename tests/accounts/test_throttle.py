"""Login throttling on the shared Redis: a wait, then a lock, per username and
per address; how a lock ends (by itself, by staff, by a password reset)."""

from __future__ import annotations

import logging
import time

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client, RequestFactory

from accounts.throttle import client_ip
from core.redis import key, redis_client
from tests.accounts.conftest import link_in

pytestmark = pytest.mark.django_db

RIGHT = {"username": "trader", "password": "s3cret-pass"}
WRONG = {"username": "trader", "password": "guess"}


@pytest.fixture
def quick(settings):
    """Thresholds small enough to reach in a test; the lock lasts a second."""
    settings.LOGIN_DELAY_AFTER = 2
    settings.LOGIN_DELAY_SECONDS = 0.5
    settings.LOGIN_LOCK_AFTER = 4
    settings.LOGIN_IP_LOCK_AFTER = 50
    settings.LOGIN_LOCK_SECONDS = 1
    return settings


def post(client, data, ip="10.0.0.1"):
    return client.post("/login/", data, REMOTE_ADDR=ip)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_failures_bring_a_wait_then_a_lock_that_ends_by_itself(
    client, user, quick, sent
):
    assert post(client, WRONG).status_code == 200
    second = post(client, WRONG)
    assert "Too many failed log-ins: wait 1 second before trying again." in second.text

    # During the wait even the right password is not tried.
    refused = post(client, RIGHT)
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert "wait 1 second" in refused.text and not logged_in(client)

    time.sleep(0.55)
    assert "wait 1 second" in post(client, WRONG).text  # 1 s now
    time.sleep(1.05)
    fourth = post(client, WRONG)
    assert "it is locked for 1 minute" in fourth.text
    assert "Reset your password to unlock it now" in fourth.text
    assert sent[-1][0] == "login_locked"
    assert sent[-1][1]["scope"] == "username" and sent[-1][1]["value"] == "trader"

    # Locked for every address, whatever the password.
    for ip in ("10.0.0.1", "10.9.9.9"):
        locked = post(client, RIGHT, ip=ip)
        assert locked.status_code == 429 and "it is locked" in locked.text
    assert not logged_in(client)

    time.sleep(1.1)
    # (From an address of its own: 10.0.0.1's count goes on, with its waits.)
    assert post(client, RIGHT, ip="10.0.0.3").status_code == 302
    assert logged_in(client)


def test_many_usernames_from_one_address_lock_that_address(
    client, user, settings, sent
):
    settings.LOGIN_DELAY_AFTER = 100
    settings.LOGIN_IP_LOCK_AFTER = 3
    for name in ("alice", "bob", "carol"):
        response = post(client, {"username": name, "password": "guess"})
    assert "from your network address" in response.text
    assert sent[-1][1]["scope"] == "ip" and sent[-1][1]["value"] == "10.0.0.1"
    refused = post(client, RIGHT)
    assert refused.status_code == 429 and "network address" in refused.text
    assert post(Client(), RIGHT, ip="10.0.0.2").status_code == 302


def test_a_successful_login_clears_the_usernames_count(client, user, settings):
    settings.LOGIN_DELAY_AFTER = 3
    post(client, WRONG)
    post(client, WRONG)
    assert post(client, RIGHT).status_code == 302
    client.logout()
    # From another address: this one's count is kept on purpose.
    post(client, WRONG, ip="10.0.0.7")
    assert "wait" not in post(client, WRONG, ip="10.0.0.7").text
    assert "wait" in post(client, WRONG, ip="10.0.0.7").text


def test_staff_unlock_a_username_at_once(client, user, settings, capsys):
    settings.LOGIN_LOCK_AFTER = 2
    settings.LOGIN_LOCK_SECONDS = 900
    post(client, WRONG)
    assert "locked for 15 minutes" in post(client, WRONG).text
    assert post(client, RIGHT).status_code == 429

    call_command("login_unlock", username="Trader")  # usernames fold case
    assert "Unlocked username 'Trader'." in capsys.readouterr().out
    assert post(client, RIGHT).status_code == 302
    call_command("login_unlock", username="trader")
    assert "it was not locked" in capsys.readouterr().out


def test_a_password_reset_lifts_the_lock(client, user, settings):
    settings.LOGIN_LOCK_AFTER = 2
    settings.LOGIN_LOCK_SECONDS = 900
    user.email = "trader@example.com"
    user.save(update_fields=["email"])
    post(client, WRONG)
    post(client, WRONG)
    assert post(client, RIGHT).status_code == 429

    client.post("/accounts/password/reset/", {"email": "trader@example.com"})
    opened = client.get(link_in(mail.outbox[0].body), follow=True)
    new = "cobalt-heron-58-dune"
    client.post(
        opened.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}
    )
    assert post(client, {"username": "trader", "password": new}).status_code == 302


def test_admin_login_is_throttled_too(client, staff_user, settings):
    settings.LOGIN_LOCK_AFTER = 2
    settings.LOGIN_LOCK_SECONDS = 900
    for _ in range(2):
        client.post(
            "/admin/login/",
            {"username": "ops", "password": "guess"},
            REMOTE_ADDR="1.2.3.4",
        )
    response = client.post(
        "/admin/login/",
        {"username": "ops", "password": "s3cret-pass"},
        REMOTE_ADDR="1.2.3.4",
    )
    assert "it is locked for 15 minutes" in response.text
    assert not logged_in(client)


def test_keys_are_namespaced_and_hold_no_username(client, user):
    post(client, WRONG)
    keys = [k.decode() for k in redis_client().keys(key("login", "*"))]
    assert len(keys) == 2  # one count per username, one per address
    assert not any("trader" in k for k in keys)


def test_client_address_behind_trusted_proxies(settings):
    factory = RequestFactory()
    request = factory.get(
        "/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 1.1.1.1, 2.2.2.2"
    )
    assert client_ip(request) == "10.0.0.9"  # no proxy: the header is forgeable
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request) == "2.2.2.2"
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request) == "1.1.1.1"


def test_logins_go_on_unthrottled_while_redis_is_down(
    redis_outage_settings, user, settings, caplog
):
    settings.LOGIN_LOCK_AFTER = 2
    redis_outage_settings.stop()
    caplog.set_level(logging.INFO)
    client = Client()
    for _ in range(4):
        response = post(client, WRONG)
        assert response.status_code == 200 and "password didn" in response.text
    assert post(client, RIGHT).status_code == 302
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "Log-ins are not throttled" in warnings[0].message
