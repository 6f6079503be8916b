"""Pages while Redis is away: a private Redis (tests.plugins.private_redis) is
killed; every page answers 200 from PostgreSQL with a visible notice, login
works (sessions live in the database), and nothing logs a traceback."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from marketdata.services import BarRow, bars_upsert, watchlist_create
from streaming.snapshots import snapshots_put
from tests.factories import PositionFactory

pytestmark = pytest.mark.django_db
NOTICE = (
    "Live prices are unavailable: the live feed store is not reachable; "
    "showing stored data."
)
SHOWN = re.compile(r'<p id="live-notice" class="notice" role="status">')
HIDDEN = re.compile(r'<p id="live-notice" class="notice" role="status" hidden>')


@pytest.fixture
def desk(user, staff_user, instruments):
    """A watchlist and a position, each instrument with a stored minute bar
    (the last one closing at 187.50 for AAPL) and a live snapshot in Redis."""
    watchlist_create(owner=user, name="Mine", symbols=["AAPL", "MSFT"])
    PositionFactory(
        owner=user,
        instrument=instruments["AAPL"],
        quantity=Decimal(10),
        average_cost=Decimal(100),
    )
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=3)
    rows = [
        BarRow(
            instrument_id=instruments[symbol].pk,
            timeframe="1m",
            ts=minute + timedelta(minutes=offset),
            open=Decimal(close),
            high=Decimal(close),
            low=Decimal(close),
            close=Decimal(close),
            volume=Decimal(5),
        )
        for symbol, offset, close in (
            ("AAPL", 0, "186.00"),
            ("AAPL", 1, "187.50"),
            ("MSFT", 0, "412.25"),
        )
    ]
    bars_upsert(rows=rows, provider="simulator", origin="live", replace=True)
    snapshots_put(
        snapshots=[
            {"symbol": "AAPL", "seq": 3, "last": "190.00", "freshness": "live"},
            {"symbol": "MSFT", "seq": 3, "last": "415.00", "freshness": "live"},
        ]
    )
    return user


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_render_stored_data_with_a_notice_while_redis_is_down(
    redis_outage_settings, desk, staff_user, caplog
):
    client, staff = signed_in(desk), signed_in(staff_user)
    live = client.get("/")
    assert live.status_code == 200 and "190.00" in live.text
    assert HIDDEN.search(live.text)

    redis_outage_settings.stop()
    caplog.set_level(logging.INFO)
    pages = {
        "/": client,
        "/instruments/AAPL/": client,
        "/portfolio/": client,
        "/alerts/": client,
        "/alerts/new?symbol=AAPL": client,
        "/status/": staff,
    }
    for url, who in pages.items():
        response = who.get(url)
        assert response.status_code == 200, url
        assert SHOWN.search(response.text) and NOTICE in response.text, url
    # The prices shown are the stored closes, marked stale.
    index = client.get("/").text
    assert "187.50" in index and "412.25" in index and "190.00" not in index
    assert 'data-freshness="stale"' in index
    assert "187.50" in client.get("/instruments/AAPL/").text
    assert "1,875.00" in client.get("/portfolio/").text  # 10 × the stored close
    status = staff.get("/status/").text
    assert "Unknown while the live feed store is not reachable" in status

    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()


def test_login_and_alert_rules_work_while_redis_is_down(
    redis_outage_settings, desk, instruments, caplog, django_capture_on_commit_callbacks
):
    redis_outage_settings.stop()
    caplog.set_level(logging.INFO)
    client = Client()
    response = client.post(
        "/login/", {"username": "trader", "password": "s3cret-pass"}, follow=True
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"
    assert SHOWN.search(response.text)

    # The rule is stored; publishing the change to running engines (Redis,
    # after commit) fails quietly, and they reload every rule when it is back.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        created = client.post(
            "/alerts/new",
            {
                "symbol": "AAPL",
                "kind": "price",
                "direction": "above",
                "level": "200",
                "hysteresis": "0",
                "cooldown_seconds": "60",
                "action": "save",
            },
        )
    assert created.status_code == 302, created.content[:2000]
    assert callbacks
    assert desk.alert_rules.filter(instrument=instruments["AAPL"]).exists()
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"


def test_metrics_and_healthz_answer_while_redis_is_down(
    redis_outage_settings, client, db
):
    redis_outage_settings.stop()
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "tapeline_stream_status_available 0.0" in metrics.text
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "degraded"


def test_the_notice_goes_away_when_redis_answers_again(redis_outage_settings, desk):
    client = signed_in(desk)
    redis_outage_settings.stop()
    assert SHOWN.search(client.get("/").text)
    redis_outage_settings.start()  # empty, as after a restart
    snapshots_put(snapshots=[{"symbol": "AAPL", "seq": 1, "last": "191.00"}])
    deadline = time.monotonic() + 5  # a down Redis is tried once a second
    while SHOWN.search(page := client.get("/").text):
        assert time.monotonic() < deadline, "the notice stayed"
        time.sleep(0.2)
    assert HIDDEN.search(page) and "191.00" in page
