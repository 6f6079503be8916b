"""Where a change came from: the API (any /api/ path, with the actor its
token authentication names), sync and async views under ASGI, a management
command in its own process, and system code outside any request."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient, Client

from audit.context import audit_as, audit_context
from audit.models import Action, Source
from marketdata.services import watchlist_create
from tests.audit.conftest import events, one
from tests.timescale.engine import ROOT

UA = "tapeline-client/0.1 (python)"


@pytest.mark.django_db
@pytest.mark.urls("tests.audit.api_urls")
def test_api_requests_are_source_api_with_the_token_owner(user):
    client = Client(HTTP_USER_AGENT=UA, REMOTE_ADDR="192.0.2.10")
    response = client.post(
        "/api/test-audit/sync", {"name": "From API"}, HTTP_X_TOKEN_OWNER="trader"
    )
    assert response.status_code == 200
    made = one(action=Action.CREATE, object_type="marketdata.Watchlist")
    assert (made.source, made.actor_id, made.actor_username) == (
        Source.API,
        user.pk,
        "trader",
    )
    assert (made.ip, made.user_agent, made.after["name"]) == (
        "192.0.2.10",
        UA,
        "From API",
    )


@pytest.mark.django_db
@pytest.mark.urls("tests.audit.api_urls")
def test_async_views_under_asgi_see_the_request_context(user):
    async def run():
        # (AsyncClient's client-wide headers do not reach the ASGI scope.)
        client = AsyncClient()
        headers = {"user-agent": UA, "x-token-owner": "trader"}
        api = await client.post(
            "/api/test-audit/async", {"name": "Async API"}, headers=headers
        )
        dash = await client.post(
            "/dash-async/watchlists", {"name": "Async dashboard"}, headers=headers
        )
        # A sync view (the login form) under the same ASGI handler.
        login = await client.post(
            "/login/", {"username": "trader", "password": "nope"}, headers=headers
        )
        return api.status_code, dash.status_code, login.status_code

    assert async_to_sync(run)() == (200, 200, 200)
    made = events(action=Action.CREATE, object_type="marketdata.Watchlist")
    assert [(e.after["name"], e.source, e.actor_id) for e in made] == [
        ("Async API", Source.API, user.pk),
        ("Async dashboard", Source.DASHBOARD, user.pk),
    ]
    assert {e.user_agent for e in made} == {UA}
    failed = one(action=Action.LOGIN_FAILED)
    assert (failed.source, failed.user_agent, failed.subject_id) == (
        Source.DASHBOARD,
        UA,
        user.pk,
    )
    assert failed.ip == "127.0.0.1"


@pytest.mark.django_db
def test_outside_requests_it_is_the_system_or_who_code_names(user, staff_user):
    watchlist_create(owner=user, name="By the system")
    with audit_as(source=Source.COMMAND, actor=staff_user, user_agent="manage.py x"):
        watchlist_create(owner=user, name="On behalf")
    system, behalf = events(action=Action.CREATE, object_type="marketdata.Watchlist")
    assert (system.source, system.actor_id, system.subject_id) == (
        Source.SYSTEM,
        None,
        user.pk,
    )
    assert (behalf.source, behalf.actor_username, behalf.user_agent) == (
        Source.COMMAND,
        "ops",
        "manage.py x",
    )
    assert audit_context().source == Source.SYSTEM  # restored after the block


@pytest.mark.transactional
def test_a_management_command_is_source_command():
    settings = connection.settings_dict
    url = (
        f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}/"
        f"{settings['NAME']}"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_instruments"],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "1", "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    made = events(action=Action.CREATE, object_type="marketdata.Instrument")
    assert len(made) > 10
    assert {(e.source, e.user_agent, e.actor_id) for e in made} == {
        (Source.COMMAND, "manage.py seed_instruments", None)
    }
    aapl = next(e for e in made if e.object_repr == "AAPL")
    assert aapl.after["symbol"] == "AAPL" and aapl.after["provider_symbols"] == {}


@pytest.mark.django_db
def test_a_one_shot_rule_turning_itself_off_is_recorded(user, instruments):
    from alerts.engine import AlertEngine
    from alerts.models import AlertRule
    from alerts.services import alert_events_record, alert_rule_create
    from tests.alerts.helpers import feed, trade

    rule = alert_rule_create(
        owner=user,
        instrument=instruments["AAPL"],
        kind="price",
        level=150,
        one_shot=True,
        cooldown_seconds=0,
    )
    engine = AlertEngine(symbols={"AAPL"})
    engine.reload()
    fired = feed(engine, [trade("AAPL", 149, 0), trade("AAPL", 151, 1)])
    alert_events_record(fired=fired, send=False)
    assert AlertRule.objects.get(pk=rule.pk).active is False
    off = one(action=Action.UPDATE, object_type="alerts.AlertRule")
    assert (off.source, off.actor_id, off.subject_id) == (Source.SYSTEM, None, user.pk)
    assert (off.object_id, off.before, off.after) == (
        str(rule.pk),
        {"active": True},
        {"active": False},
    )
