"""Changes made through the real token API (`Authorization: Bearer`, no
session) are recorded as source "api" with the token's user, the client's
IP and user agent, and the values before and after: watchlists and their
items, alert rules, positions and transactions (CSV imports included)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from api.services import api_token_create
from audit.models import Action, Source
from marketdata.models import Position
from tests.audit.conftest import events, one

pytestmark = pytest.mark.django_db

SCRIPT = "tapeline-script/2.0 (requests)"
JSON = "application/json"


@pytest.fixture
def api(user) -> Client:
    plain = api_token_create(user=user, name="script", scope="read-write")[1]
    return Client(
        HTTP_AUTHORIZATION=f"Bearer {plain}",
        HTTP_USER_AGENT=SCRIPT,
        REMOTE_ADDR="192.0.2.44",
    )


def by_token_user(event, user) -> None:
    assert (event.source, event.actor_id, event.actor_username) == (
        Source.API,
        user.pk,
        "trader",
    ), event
    assert (event.subject_id, event.ip, event.user_agent) == (
        user.pk,
        "192.0.2.44",
        SCRIPT,
    ), event


def test_watchlists_and_items(api, user, instruments):
    made = api.post(
        "/api/watchlists", {"name": "Scripted", "symbols": ["AAPL"]}, content_type=JSON
    )
    assert made.status_code == 201
    wl = made.json()["id"]
    created = one(action=Action.CREATE, object_type="marketdata.Watchlist")
    by_token_user(created, user)
    assert created.after["name"] == "Scripted"
    first_item = one(action=Action.CREATE, object_type="marketdata.WatchlistItem")
    by_token_user(first_item, user)
    assert first_item.after["instrument_id"] == instruments["AAPL"].pk

    api.patch(f"/api/watchlists/{wl}", {"name": "Scripted 2"}, content_type=JSON)
    renamed = one(action=Action.UPDATE, object_type="marketdata.Watchlist")
    by_token_user(renamed, user)
    assert (renamed.before, renamed.after) == (
        {"name": "Scripted"},
        {"name": "Scripted 2"},
    )

    api.post(f"/api/watchlists/{wl}/items", {"symbol": "MSFT"}, content_type=JSON)
    added = events(action=Action.CREATE, object_type="marketdata.WatchlistItem")[-1]
    by_token_user(added, user)
    assert added.after["instrument_id"] == instruments["MSFT"].pk

    assert api.delete(f"/api/watchlists/{wl}/items/MSFT").status_code == 204
    removed = one(action=Action.DELETE, object_type="marketdata.WatchlistItem")
    by_token_user(removed, user)
    assert removed.before["instrument_id"] == instruments["MSFT"].pk

    assert api.delete(f"/api/watchlists/{wl}").status_code == 204
    gone = one(action=Action.DELETE, object_type="marketdata.Watchlist")
    by_token_user(gone, user)
    assert gone.before["name"] == "Scripted 2"
    cascaded = events(action=Action.DELETE, object_type="marketdata.WatchlistItem")
    assert len(cascaded) == 2 and {e.source for e in cascaded} == {Source.API}


def test_alert_rules(api, user, instruments):
    made = api.post(
        "/api/alerts/rules",
        {"symbol": "AAPL", "kind": "price", "direction": "above", "level": 150},
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    rule = made.json()["id"]
    created = one(action=Action.CREATE, object_type="alerts.AlertRule")
    by_token_user(created, user)
    assert created.object_id == str(rule) and created.after["level"] == "150"

    api.patch(f"/api/alerts/rules/{rule}", {"level": "151.5"}, content_type=JSON)
    changed = one(action=Action.UPDATE, object_type="alerts.AlertRule")
    by_token_user(changed, user)
    assert (changed.before, changed.after) == ({"level": "150"}, {"level": "151.5"})

    # A dry run changes nothing, so records nothing.
    api.post(f"/api/alerts/rules/{rule}/dry-run", {"days": 1}, content_type=JSON)
    assert len(events(object_type="alerts.AlertRule")) == 2

    assert api.delete(f"/api/alerts/rules/{rule}").status_code == 204
    deleted = one(action=Action.DELETE, object_type="alerts.AlertRule")
    by_token_user(deleted, user)
    assert deleted.before["level"] == "151.5"


def test_positions_and_transactions(api, user, instruments):
    day = (timezone.localdate() - timedelta(days=5)).isoformat()
    opened = api.post(
        "/api/positions",
        {"symbol": "AAPL", "date": day, "quantity": "10", "price": "100"},
        content_type=JSON,
    )
    assert opened.status_code == 201
    pid = opened.json()["id"]
    position = one(action=Action.CREATE, object_type="marketdata.Position")
    by_token_user(position, user)
    buy = one(action=Action.CREATE, object_type="marketdata.Transaction")
    by_token_user(buy, user)
    assert buy.after == {
        "id": buy.after["id"],
        "position_id": pid,
        "kind": "buy",
        "date": day,
        "quantity": "10",
        "price": "100",
        "fee": "0",
        "note": "",
    }
    # The fold writes the position's aggregate: an update by the same hand.
    folded = one(action=Action.UPDATE, object_type="marketdata.Position")
    by_token_user(folded, user)
    assert folded.after == {"quantity": "10", "average_cost": "100"}

    sold = api.post(
        f"/api/positions/{pid}/transactions",
        {"kind": "sell", "quantity": "4", "price": "110"},
        content_type=JSON,
    ).json()
    sell = events(action=Action.CREATE, object_type="marketdata.Transaction")[-1]
    by_token_user(sell, user)
    assert sell.object_id == str(sold["id"]) and sell.after["quantity"] == "4"

    api.patch(f"/api/transactions/{sold['id']}", {"quantity": "3"}, content_type=JSON)
    changed = one(action=Action.UPDATE, object_type="marketdata.Transaction")
    by_token_user(changed, user)
    assert (changed.before, changed.after) == ({"quantity": "4"}, {"quantity": "3"})

    # A refused oversell records nothing.
    before = len(events())
    refused = api.patch(
        f"/api/transactions/{sold['id']}", {"quantity": "30"}, content_type=JSON
    )
    assert refused.status_code == 400 and len(events()) == before

    assert api.delete(f"/api/transactions/{sold['id']}").status_code == 204
    deleted = one(action=Action.DELETE, object_type="marketdata.Transaction")
    by_token_user(deleted, user)
    assert deleted.before["kind"] == "sell" and deleted.before["quantity"] == "3"

    api.post(f"/api/positions/{pid}/close", {"price": "120"}, content_type=JSON)
    close = events(action=Action.CREATE, object_type="marketdata.Transaction")[-1]
    by_token_user(close, user)
    assert (close.after["kind"], close.after["quantity"]) == ("sell", "10")

    imported = api.post(
        "/api/transactions/import",
        {"csv": f"date,symbol,type,quantity,price\n{day},MSFT,buy,2,400\n"},
        content_type=JSON,
    )
    assert imported.status_code == 201
    msft = events(action=Action.CREATE, object_type="marketdata.Transaction")[-1]
    by_token_user(msft, user)
    assert (msft.after["kind"], msft.after["quantity"]) == ("buy", "2")

    assert api.delete(f"/api/positions/{pid}").status_code == 204
    assert not Position.objects.filter(pk=pid).exists()
    gone = one(action=Action.DELETE, object_type="marketdata.Position")
    by_token_user(gone, user)
    assert gone.object_id == str(pid)
    # Besides the sell deleted above, the buy and the closing sell went with it.
    cascaded = [
        e
        for e in events(action=Action.DELETE, object_type="marketdata.Transaction")
        if e.before["position_id"] == pid
    ]
    assert sorted(e.before["kind"] for e in cascaded) == ["buy", "sell", "sell"]
    for event in cascaded:
        by_token_user(event, user)
