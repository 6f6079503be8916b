"""Changes made in Django admin are recorded as source "admin" with the staff
member, their IP and browser, and the values before and after: instruments
(their provider symbols are the provider settings), bulk admin actions,
positions with their inline transactions, watchlists with inline items, alert rules, users and passwords."""

from __future__ import annotations

from decimal import Decimal

import pytest

from alerts.models import AlertRule
from alerts.services import alert_rule_create
from audit.models import HIDDEN, Action, Source
from marketdata.models import Instrument, Position, Watchlist
from marketdata.services import watchlist_create
from tests.audit.conftest import ADMIN_BROWSER, events, form_data, one
from tests.factories import PositionFactory

pytestmark = pytest.mark.django_db


def by_staff(event, staff_user) -> None:
    assert event.source == Source.ADMIN
    assert (event.actor_id, event.actor_username) == (staff_user.pk, "ops")
    assert (event.ip, event.user_agent) == ("198.51.100.20", ADMIN_BROWSER)


def admin_post(client, url: str, **changes):
    page = client.get(url)
    assert page.status_code == 200
    response = client.post(url, {**form_data(page), **changes})
    if response.status_code != 302:
        form = response.context["adminform"].form
        raise AssertionError(f"admin refused the form: {form.errors}")
    return response


def test_instrument_add_provider_symbols_change_actions_and_delete(staff, staff_user):
    admin_post(
        staff,
        "/admin/marketdata/instrument/add/",
        symbol="ETH/USD",
        name="Ether",
        asset_class="crypto",
        currency="USD",
        price_increment="0.01",
        provider_symbols="{}",
    )
    eth = Instrument.objects.get(symbol="ETH/USD")
    created = one(action=Action.CREATE, object_type="marketdata.Instrument")
    by_staff(created, staff_user)
    assert created.object_id == str(eth.pk) and created.object_repr == "ETH/USD"
    assert created.after["name"] == "Ether" and created.after["provider_symbols"] == {}
    assert "viewed_at" not in created.after  # noise fields are not tracked

    admin_post(
        staff,
        f"/admin/marketdata/instrument/{eth.pk}/change/",
        provider_symbols='{"binance": "ETHUSDT"}',
    )
    changed = one(action=Action.UPDATE, object_type="marketdata.Instrument")
    by_staff(changed, staff_user)
    assert changed.before == {"provider_symbols": {}}
    assert changed.after == {"provider_symbols": {"binance": "ETHUSDT"}}

    # Bulk actions write with one UPDATE; each instrument is still recorded.
    staff.post(
        "/admin/marketdata/instrument/",
        {"action": "deactivate", "_selected_action": [eth.pk]},
    )
    eth.refresh_from_db()
    assert eth.active is False
    action = events(action=Action.UPDATE, object_type="marketdata.Instrument")[-1]
    by_staff(action, staff_user)
    assert (action.before, action.after) == ({"active": True}, {"active": False})

    staff.post(f"/admin/marketdata/instrument/{eth.pk}/delete/", {"post": "yes"})
    assert not Instrument.objects.filter(pk=eth.pk).exists()
    deleted = one(action=Action.DELETE, object_type="marketdata.Instrument")
    by_staff(deleted, staff_user)
    assert deleted.before["symbol"] == "ETH/USD"
    assert deleted.before["provider_symbols"] == {"binance": "ETHUSDT"}


def test_position_add_change_delete(staff, staff_user, user, instruments):
    """Positions are folded from their transactions: admin adds one with an
    inline buy, changes it by adding a sell, deletes it with both."""
    url = "/admin/marketdata/position/add/"
    data = form_data(staff.get(url))
    data.update(
        {
            "owner": str(user.pk),
            "instrument": str(instruments["AAPL"].pk),
            "transactions-0-date": "2026-03-02",
            "transactions-0-kind": "buy",
            "transactions-0-quantity": "10",
            "transactions-0-price": "150.25",
            "transactions-0-fee": "0",
        }
    )
    response = staff.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    position = Position.objects.get(owner=user)
    created = one(action=Action.CREATE, object_type="marketdata.Position")
    by_staff(created, staff_user)
    assert created.subject_id == user.pk  # whose position: the trader's
    buy = one(action=Action.CREATE, object_type="marketdata.Transaction")
    by_staff(buy, staff_user)
    assert buy.subject_id == user.pk
    assert (buy.after["kind"], buy.after["quantity"], buy.after["price"]) == (
        "buy",
        "10",
        "150.25",
    )
    assert buy.after["position_id"] == position.pk
    folded = one(action=Action.UPDATE, object_type="marketdata.Position")
    by_staff(folded, staff_user)
    assert (folded.before, folded.after) == (
        {"quantity": "0", "average_cost": "0"},
        {"quantity": "10", "average_cost": "150.25"},
    )

    url = f"/admin/marketdata/position/{position.pk}/change/"
    data = form_data(staff.get(url))
    data.update(
        {
            "transactions-1-date": "2026-03-05",
            "transactions-1-kind": "sell",
            "transactions-1-quantity": "4",
            "transactions-1-price": "160",
            "transactions-1-fee": "0",
        }
    )
    response = staff.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    sell = events(action=Action.CREATE, object_type="marketdata.Transaction")[-1]
    by_staff(sell, staff_user)
    assert (sell.after["kind"], sell.after["quantity"], sell.subject_id) == (
        "sell",
        "4",
        user.pk,
    )
    changed = events(action=Action.UPDATE, object_type="marketdata.Position")[-1]
    by_staff(changed, staff_user)
    # 4 sold at 160 against the 150.25 average: 39 realized.
    assert (changed.before, changed.after) == (
        {"quantity": "10", "realized_pl": "0"},
        {"quantity": "6", "realized_pl": "39"},
    )
    assert changed.subject_id == user.pk

    staff.post(f"/admin/marketdata/position/{position.pk}/delete/", {"post": "yes"})
    assert not Position.objects.filter(pk=position.pk).exists()
    deleted = one(action=Action.DELETE, object_type="marketdata.Position")
    by_staff(deleted, staff_user)
    assert deleted.before["quantity"] == "6"
    assert deleted.subject_id == user.pk
    gone = events(action=Action.DELETE, object_type="marketdata.Transaction")
    assert sorted(e.before["kind"] for e in gone) == ["buy", "sell"]
    for event in gone:
        by_staff(event, staff_user)
        assert event.subject_id == user.pk


def test_watchlist_with_inline_items(staff, staff_user, user, instruments):
    watchlist = watchlist_create(owner=user, name="Core", symbols=["AAPL"])
    url = f"/admin/marketdata/watchlist/{watchlist.pk}/change/"
    page = staff.get(url)
    data = form_data(page)
    data["name"] = "Core holdings"
    # The empty extra inline row gets an instrument: a new item.
    data["items-1-instrument"] = str(instruments["MSFT"].pk)
    data["items-1-position"] = "1"
    response = staff.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    renamed = one(action=Action.UPDATE, object_type="marketdata.Watchlist")
    by_staff(renamed, staff_user)
    assert renamed.after == {"name": "Core holdings"}
    item = events(action=Action.CREATE, object_type="marketdata.WatchlistItem")[-1]
    by_staff(item, staff_user)
    assert item.after["instrument_id"] == instruments["MSFT"].pk
    assert item.subject_id == user.pk

    staff.post(f"/admin/marketdata/watchlist/{watchlist.pk}/delete/", {"post": "yes"})
    assert not Watchlist.objects.filter(pk=watchlist.pk).exists()
    by_staff(one(action=Action.DELETE, object_type="marketdata.Watchlist"), staff_user)
    items = events(action=Action.DELETE, object_type="marketdata.WatchlistItem")
    assert len(items) == 2 and {e.source for e in items} == {Source.ADMIN}


def test_alert_rule_change_and_bulk_action(staff, staff_user, user, instruments):
    rule = alert_rule_create(
        owner=user, instrument=instruments["AAPL"], kind="price", level=150
    )
    made = one(action=Action.CREATE, object_type="alerts.AlertRule")
    assert made.source == Source.SYSTEM  # a service called outside any request
    admin_post(staff, f"/admin/alerts/alertrule/{rule.pk}/change/", level="175")
    changed = one(action=Action.UPDATE, object_type="alerts.AlertRule")
    by_staff(changed, staff_user)
    assert (changed.before, changed.after) == ({"level": "150"}, {"level": "175"})
    assert changed.subject_id == user.pk

    staff.post(
        "/admin/alerts/alertrule/",
        {"action": "deactivate", "_selected_action": [rule.pk]},
    )
    assert AlertRule.objects.get(pk=rule.pk).active is False
    paused = events(action=Action.UPDATE, object_type="alerts.AlertRule")[-1]
    by_staff(paused, staff_user)
    assert (paused.before, paused.after) == ({"active": True}, {"active": False})


def test_user_created_and_password_set_in_admin(staff, staff_user):
    from django.contrib.auth import get_user_model

    url = "/admin/auth/user/add/"
    page = staff.get(url)
    response = staff.post(
        url,
        {
            **form_data(page),
            "username": "newcomer",
            "usable_password": "true",
            "password1": "Long-enough-passphrase-1",
            "password2": "Long-enough-passphrase-1",
        },
    )
    assert response.status_code == 302
    newcomer = get_user_model().objects.get(username="newcomer")
    created = one(action=Action.CREATE, object_type="auth.User", object_id=newcomer.pk)
    by_staff(created, staff_user)
    assert created.after["username"] == "newcomer"
    assert created.after["password"] == HIDDEN
    assert newcomer.password not in str(created.after)

    response = staff.post(
        f"/admin/auth/user/{newcomer.pk}/password/",
        {"password1": "Another-passphrase-22", "password2": "Another-passphrase-22"},
    )
    assert response.status_code == 302
    changed = one(action=Action.PASSWORD_CHANGED)
    by_staff(changed, staff_user)
    assert changed.subject_id == newcomer.pk
    assert changed.before == {"password": HIDDEN} == changed.after


def test_admin_login_is_source_admin(client, staff_user):
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "ops", "password": "s3cret-pass"},
        HTTP_USER_AGENT=ADMIN_BROWSER,
    )
    assert response.status_code == 302
    login = one(action=Action.LOGIN)
    assert (login.source, login.actor_id, login.subject_id) == (
        Source.ADMIN,
        staff_user.pk,
        staff_user.pk,
    )
    assert login.user_agent == ADMIN_BROWSER and login.ip == "127.0.0.1"


def test_decimal_noise_is_not_a_change(staff, user, instruments):
    position = PositionFactory(
        owner=user,
        instrument=instruments["AAPL"],
        quantity=Decimal("10"),
        average_cost=Decimal("150.25"),
    )
    # Saving the page unchanged (the form sends 150.25000000) records nothing.
    admin_post(staff, f"/admin/marketdata/position/{position.pk}/change/")
    assert events(action=Action.UPDATE) == []
