"""Changes made in the dashboard are recorded with who, from where, and the
values before and after: watchlists, their items, alert rules, positions and
their transactions (CSV imports included), over real HTTP requests (Django
test client) and PostgreSQL."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from alerts.models import AlertRule
from audit.models import HIDDEN, Action, Source
from marketdata.models import Position, Watchlist
from tests.audit.conftest import BROWSER, events, one
from tests.factories import RuleFormFactory

pytestmark = pytest.mark.django_db


def who(event, user) -> tuple:
    return (
        event.source,
        event.actor_id,
        event.actor_username,
        event.subject_id,
        event.ip,
        event.user_agent,
    )


def test_watchlist_create_rename_items_reorder_and_delete(browser, user, instruments):
    mine = (Source.DASHBOARD, user.pk, "trader", user.pk, "203.0.113.7", BROWSER)

    assert browser.post("/watchlists/create", {"name": "Growth"}).status_code == 302
    watchlist = Watchlist.objects.get(owner=user, name="Growth")
    created = one(action=Action.CREATE, object_type="marketdata.Watchlist")
    assert who(created, user) == mine
    assert created.object_id == str(watchlist.pk)
    assert created.object_repr == "Growth (trader)"
    assert created.before is None
    assert created.after["name"] == "Growth"
    assert created.after["owner_id"] == user.pk

    browser.post(f"/watchlists/{watchlist.pk}/rename", {"name": "Tech growth"})
    renamed = one(action=Action.UPDATE, object_type="marketdata.Watchlist")
    assert who(renamed, user) == mine
    assert (renamed.before, renamed.after) == (
        {"name": "Growth"},
        {"name": "Tech growth"},
    )

    for symbol in ("AAPL", "MSFT", "NVDA"):
        browser.post(f"/watchlists/{watchlist.pk}/items/add", {"symbol": symbol})
    added = events(action=Action.CREATE, object_type="marketdata.WatchlistItem")
    assert [e.after["instrument_id"] for e in added] == [
        instruments[s].pk for s in ("AAPL", "MSFT", "NVDA")
    ]
    assert [e.after["position"] for e in added] == [0, 1, 2]
    assert {who(e, user) for e in added} == {mine}

    browser.post(
        f"/watchlists/{watchlist.pk}/items/reorder", {"order": ["NVDA", "AAPL"]}
    )
    reordered = events(action=Action.UPDATE, object_type="marketdata.Watchlist")[-1]
    assert who(reordered, user) == mine
    assert reordered.object_id == str(watchlist.pk)
    assert reordered.before == {"items": ["AAPL", "MSFT", "NVDA"]}
    assert reordered.after == {"items": ["NVDA", "AAPL", "MSFT"]}

    browser.post(f"/watchlists/{watchlist.pk}/items/remove", {"symbol": "MSFT"})
    removed = one(action=Action.DELETE, object_type="marketdata.WatchlistItem")
    assert who(removed, user) == mine
    assert removed.before["instrument_id"] == instruments["MSFT"].pk
    assert removed.before["watchlist_id"] == watchlist.pk
    assert removed.after is None

    browser.post(f"/watchlists/{watchlist.pk}/delete")
    gone = one(action=Action.DELETE, object_type="marketdata.Watchlist")
    assert who(gone, user) == mine
    assert gone.before["name"] == "Tech growth"
    # The items that went with it are each recorded too.
    cascaded = events(action=Action.DELETE, object_type="marketdata.WatchlistItem")
    assert sorted(e.before["instrument_id"] for e in cascaded) == sorted(
        instruments[s].pk for s in ("AAPL", "MSFT", "NVDA")
    )


def test_watchlist_reorder_records_each_moved_list(browser, user, instruments):
    browser.post("/watchlists/create", {"name": "One"})
    browser.post("/watchlists/create", {"name": "Two"})
    one_, two = Watchlist.objects.filter(owner=user).order_by("position")
    browser.post("/watchlists/reorder", {"order": [two.pk, one_.pk]})
    moved = events(action=Action.UPDATE, object_type="marketdata.Watchlist")
    assert {
        (e.object_id, e.before["position"], e.after["position"]) for e in moved
    } == {
        (str(one_.pk), 0, 1),
        (str(two.pk), 1, 0),
    }
    assert {e.source for e in moved} == {Source.DASHBOARD}


def test_a_rejected_change_records_nothing(browser, user, instruments):
    browser.post("/watchlists/create", {"name": "Growth"})
    before = len(events())
    # A name already taken: refused, nothing changed, nothing recorded.
    browser.post("/watchlists/create", {"name": "Growth"})
    assert len(events()) == before


def test_alert_rule_create_edit_toggle_delete(browser, user, instruments):
    assert browser.post("/alerts/new", RuleFormFactory()).status_code == 302
    rule = AlertRule.objects.get(owner=user)
    created = one(action=Action.CREATE, object_type="alerts.AlertRule")
    assert created.source == Source.DASHBOARD and created.actor_id == user.pk
    assert created.subject_id == user.pk
    assert created.after["level"] == "150"
    assert created.after["instrument_id"] == instruments["AAPL"].pk
    assert created.after["note"] == "breakout"

    browser.post(
        f"/alerts/{rule.pk}/edit", RuleFormFactory(symbol="MSFT", level="420.5")
    )
    edited = one(action=Action.UPDATE, object_type="alerts.AlertRule")
    assert edited.before == {"instrument_id": instruments["AAPL"].pk, "level": "150"}
    assert edited.after == {"instrument_id": instruments["MSFT"].pk, "level": "420.5"}

    browser.post(f"/alerts/{rule.pk}/toggle")
    toggled = events(action=Action.UPDATE, object_type="alerts.AlertRule")[-1]
    assert (toggled.before, toggled.after) == ({"active": True}, {"active": False})

    browser.post(f"/alerts/{rule.pk}/delete")
    deleted = one(action=Action.DELETE, object_type="alerts.AlertRule")
    assert deleted.object_id == str(rule.pk)
    assert deleted.before["level"] == "420.5"
    assert deleted.before["active"] is False
    assert deleted.source == Source.DASHBOARD


def test_a_password_change_is_recorded_without_the_hash(user):
    from django.contrib.auth import get_user_model

    old_hash = user.password
    user.set_password("a-new-long-passphrase")
    user.save()
    event = one(action=Action.PASSWORD_CHANGED)
    assert event.subject_id == user.pk
    assert event.before == {"password": HIDDEN} and event.after == {"password": HIDDEN}
    stored = str(list(get_user_model().objects.values_list("password", flat=True)))
    assert stored != old_hash
    for e in events():
        text = f"{e.before} {e.after}"
        assert old_hash not in text and user.password not in text


def test_positions_and_transactions_from_the_portfolio_pages(
    browser, user, instruments
):
    mine = (Source.DASHBOARD, user.pk, "trader", user.pk, "203.0.113.7", BROWSER)
    added = browser.post(
        "/portfolio/transactions/add",
        {"symbol": "aapl", "kind": "buy", "date": "2026-03-02", "quantity": "10",
         "price": "150.25", "fee": "1", "note": "first lot"},
    )  # fmt: skip
    assert added.status_code == 302
    position = Position.objects.get(owner=user)
    assert who(one(action=Action.CREATE, object_type="marketdata.Position"), user) == (
        mine
    )
    buy = one(action=Action.CREATE, object_type="marketdata.Transaction")
    assert who(buy, user) == mine
    assert buy.after["position_id"] == position.pk
    assert (buy.after["quantity"], buy.after["price"], buy.after["note"]) == (
        "10",
        "150.25",
        "first lot",
    )

    browser.post(
        "/portfolio/transactions/add",
        {"position": position.pk, "kind": "sell", "date": "2026-03-05",
         "quantity": "4", "price": "160"},
    )  # fmt: skip
    sell = events(action=Action.CREATE, object_type="marketdata.Transaction")[-1]
    assert who(sell, user) == mine and sell.after["kind"] == "sell"

    browser.post(
        f"/portfolio/transactions/{sell.object_id}/edit",
        {"kind": "sell", "date": "2026-03-05", "quantity": "5", "price": "160"},
    )
    edited = one(action=Action.UPDATE, object_type="marketdata.Transaction")
    assert who(edited, user) == mine
    assert (edited.before, edited.after) == ({"quantity": "4"}, {"quantity": "5"})
    # Every fold of the position is recorded with the same hand.
    folds = events(action=Action.UPDATE, object_type="marketdata.Position")
    assert len(folds) == 3 and {who(e, user) for e in folds} == {mine}
    assert (folds[-1].before["quantity"], folds[-1].after["quantity"]) == ("6", "5")

    browser.post(f"/portfolio/transactions/{sell.object_id}/delete")
    deleted = one(action=Action.DELETE, object_type="marketdata.Transaction")
    assert who(deleted, user) == mine and deleted.before["quantity"] == "5"

    browser.post(
        f"/portfolio/{position.pk}/close",
        {"close-date": "2026-03-09", "close-price": "170", "close-fee": ""},
    )
    closing = events(action=Action.CREATE, object_type="marketdata.Transaction")[-1]
    assert who(closing, user) == mine
    assert (closing.after["kind"], closing.after["quantity"]) == ("sell", "10")

    upload = SimpleUploadedFile(
        "t.csv", b"date,symbol,type,quantity,price\n2026-03-02,MSFT,buy,2,400\n"
    )
    response = browser.post("/portfolio/transactions/import", {"file": upload})
    assert response.status_code == 302
    imported = events(action=Action.CREATE, object_type="marketdata.Transaction")[-1]
    assert who(imported, user) == mine
    assert (imported.after["kind"], imported.after["price"]) == ("buy", "400")

    browser.post(f"/portfolio/{position.pk}/delete")
    gone = one(action=Action.DELETE, object_type="marketdata.Position")
    assert who(gone, user) == mine and gone.object_id == str(position.pk)
    with_it = [
        e
        for e in events(action=Action.DELETE, object_type="marketdata.Transaction")
        if e.before["position_id"] == position.pk
    ]
    assert sorted(e.before["kind"] for e in with_it) == ["buy", "sell", "sell"]
    assert {who(e, user) for e in with_it} == {mine}
