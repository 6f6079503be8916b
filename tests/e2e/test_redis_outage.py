"""Daphne and Chromium through a Redis outage: the web server runs alone on a
private Redis (tests.plugins.private_redis) that the test kills and starts
again. No stream worker is needed: the page and its socket are under test."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORD, Stack, database_access, database_url
from tests.plugins.private_redis import PrivateRedis
from tests.plugins.simulator import free_port

pytestmark = pytest.mark.e2e

USERNAME = "e2e-redis"


@pytest.fixture(scope="module")
def redis_web(django_db_setup, django_db_blocker):
    """(Daphne as a `Stack` without a simulator, its private Redis)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.test.utils import setup_databases

    from marketdata.models import Instrument
    from marketdata.services import instruments_upsert, watchlist_create
    from marketdata.universe import universe_rows

    if connection.settings_dict["NAME"] != connection.creation._get_test_db_name():
        with database_access(django_db_blocker):
            setup_databases(
                verbosity=0, interactive=False, keepdb=True, aliases={"default"}
            )
    assert connection.settings_dict["NAME"].startswith("test_"), "not a test database"
    redis = PrivateRedis()
    redis.start()
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis.url(0),
        "LOG_LEVEL": "WARNING",
    }
    web = Stack(env=env, simulator=None, web_port=free_port())
    try:
        with database_access(django_db_blocker):
            if not Instrument.objects.exists():
                instruments_upsert(rows=universe_rows())
            trader = get_user_model().objects.create(
                username=USERNAME,
                password=make_password(PASSWORD, hasher="pbkdf2_sha256"),
            )
            watchlist_create(owner=trader, name="Crypto", symbols=["BTC/USD"])
        web.start_web()
        yield web, redis
    finally:
        web.stop("web")
        redis.stop()
        with database_access(django_db_blocker):
            call_command("flush", interactive=False, verbosity=0)


def test_the_badge_says_the_live_feed_is_unavailable_and_recovers(page, redis_web):
    web, redis = redis_web
    page.goto(web.url + "/login/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(web.url + "/")
    badge, notice = page.locator("#conn-badge"), page.locator("#live-notice")
    expect(badge).to_have_text("connected", timeout=15_000)
    expect(notice).to_be_hidden()

    redis.stop()
    expect(badge).to_have_text("live feed unavailable", timeout=15_000)
    expect(notice).to_be_visible()
    page.wait_for_timeout(3_000)  # the socket stays up: no reconnect loop
    expect(badge).to_have_text("live feed unavailable")

    page.reload()  # a new page and handshake while Redis is down
    expect(notice).to_be_visible()
    expect(badge).to_have_text("live feed unavailable", timeout=15_000)

    redis.start()
    expect(badge).to_have_text("connected", timeout=15_000)
    expect(notice).to_be_hidden()
    expect(page.locator(".toast-ok").last).to_contain_text("restored")

    web.logs["web"].seek(0)
    log = web.logs["web"].read().decode(errors="replace")
    assert log.count("is unreachable") == 1 and "Traceback" not in log, log
