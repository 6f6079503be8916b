"""Recording, editing and deleting transactions from the portfolio pages:
a sell of more than is held is refused with a clear message by every path
and nothing changes; someone else's positions and transactions are 404."""

from __future__ import annotations

import html
import json
import re
from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from marketdata.models import Position, Transaction
from portfolio.services import transaction_add
from tests.factories import PositionFactory

pytestmark = pytest.mark.django_db
DAY = date(2026, 3, 2)


def buy(owner, symbol="AAPL", quantity="10", price="100", day=DAY):
    return transaction_add(
        owner=owner,
        symbol=symbol,
        kind="buy",
        day=day,
        quantity=Decimal(quantity),
        price=Decimal(price),
    )


def test_recording_a_buy_opens_a_position(user, instruments, client_for):
    response = client_for(user).post(
        reverse("dashboard:transaction_add"),
        {"symbol": "aapl", "kind": "buy", "date": "2026-03-02", "quantity": "10",
         "price": "150.25", "fee": "1", "note": "first lot"},
    )  # fmt: skip
    position = Position.objects.get(owner=user)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:position", args=[position.pk])
    assert (position.quantity, position.average_cost) == (
        Decimal(10),
        Decimal("150.35"),
    )
    page = client_for(user).get(response["Location"]).content.decode()
    assert "first lot" in page and "150.35" in page


def test_a_sell_larger_than_held_is_refused(user, instruments, client_for):
    buy(user)
    client = client_for(user)
    response = client.post(
        reverse("dashboard:transaction_add"),
        {"symbol": "AAPL", "kind": "sell", "date": "2026-03-03", "quantity": "15",
         "price": "120"},
    )  # fmt: skip
    html = response.content.decode()
    assert response.status_code == 400
    assert "The sell of 15 on 2026-03-03 is more than the 10 held then" in html
    assert Transaction.objects.count() == 1
    assert Position.objects.get(owner=user).quantity == Decimal(10)


def test_a_sell_dated_before_the_buy_is_refused(user, instruments, client_for):
    position = buy(user).position
    response = client_for(user).post(
        reverse("dashboard:transaction_add"),
        {"position": position.pk, "kind": "sell", "date": "2026-03-01",
         "quantity": "1", "price": "120"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "more than the 0 held then" in response.content.decode()
    assert Transaction.objects.count() == 1


def test_edits_and_deletes_that_would_oversell_later_are_refused(
    user, instruments, client_for
):
    first = buy(user)
    transaction_add(
        owner=user, symbol="AAPL", kind="sell", day=date(2026, 3, 10),
        quantity=Decimal(8), price=Decimal(110),
    )  # fmt: skip
    client = client_for(user)
    edit = reverse("dashboard:transaction_edit", args=[first.pk])
    response = client.post(
        edit, {"kind": "buy", "date": "2026-03-02", "quantity": "5", "price": "100"}
    )
    assert response.status_code == 400
    assert "The sell of 8 on 2026-03-10 is more than the 5 held then" in (
        response.content.decode()
    )
    response = client.post(reverse("dashboard:transaction_delete", args=[first.pk]))
    assert response.status_code == 302
    follow = client.get(response["Location"]).content.decode()
    assert "more than the 0 held then" in follow
    first.refresh_from_db()
    assert first.quantity == Decimal(10)
    position = Position.objects.get(owner=user)
    assert (position.quantity, position.realized_pl) == (Decimal(2), Decimal(80))
    # A good edit re-folds: 12 @ 100, 8 sold @ 110 -> 4 left, +80 realized.
    response = client.post(
        edit, {"kind": "buy", "date": "2026-03-02", "quantity": "12", "price": "100"}
    )
    assert response.status_code == 302
    position.refresh_from_db()
    assert (position.quantity, position.realized_pl) == (Decimal(4), Decimal(80))


def test_bad_fields_are_shown_back(user, instruments, client_for):
    response = client_for(user).post(
        reverse("dashboard:transaction_add"),
        {"symbol": "NOPE", "kind": "buy", "date": "2026-03-02", "quantity": "1",
         "price": "1"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "No instrument &#x27;NOPE&#x27;" in response.content.decode()
    response = client_for(user).post(
        reverse("dashboard:transaction_add"),
        {"symbol": "AAPL", "kind": "buy", "date": "2026-03-02", "quantity": "0",
         "price": "1.123456789"},
    )  # fmt: skip
    html = response.content.decode()
    assert "Price has more than 8 decimal places." in html
    assert not Position.objects.exists()


def test_a_position_set_before_transactions_keeps_what_it_held(
    user, instruments, client_for
):
    position = PositionFactory(
        owner=user, instrument=instruments["MSFT"],
        quantity=Decimal(4), average_cost=Decimal(400),
    )  # fmt: skip
    response = client_for(user).post(
        reverse("dashboard:transaction_add"),
        {"position": position.pk, "kind": "sell",
         "date": timezone.localdate().isoformat(), "quantity": "1", "price": "450"},
    )  # fmt: skip
    assert response.status_code == 302
    position.refresh_from_db()
    assert (position.quantity, position.realized_pl) == (Decimal(3), Decimal(50))
    assert position.transactions.first().note == "Opening balance"


def test_someone_elses_positions_and_transactions_are_404(
    user, other_user, instruments, client_for
):
    theirs = buy(other_user, "NVDA")
    position = theirs.position
    client = client_for(user)
    for method, name, args, data in (
        ("get", "dashboard:position", [position.pk], None),
        ("post", "dashboard:position_close", [position.pk], {"close-date": "2026-03-03", "close-price": "1"}),
        ("post", "dashboard:position_delete", [position.pk], {}),
        ("get", "dashboard:transaction_edit", [theirs.pk], None),
        ("post", "dashboard:transaction_edit", [theirs.pk], {"kind": "buy", "date": "2026-03-02", "quantity": "1", "price": "1"}),
        ("post", "dashboard:transaction_delete", [theirs.pk], {}),
    ):  # fmt: skip
        response = getattr(client, method)(reverse(name, args=args), data)
        assert response.status_code == 404, name
    response = client.post(
        reverse("dashboard:transaction_add"),
        {"position": position.pk, "kind": "sell", "date": "2026-03-03",
         "quantity": "10", "price": "1"},
    )  # fmt: skip
    assert response.status_code == 404
    export = reverse("dashboard:transactions_export")
    assert client.get(export, {"position": position.pk}).status_code == 404
    assert "NVDA" not in client.get(export).content.decode()
    assert "NVDA" not in client.get(reverse("dashboard:portfolio")).content.decode()
    theirs.refresh_from_db()
    assert theirs.quantity == Decimal(10)
    assert Position.objects.get(pk=position.pk).quantity == Decimal(10)


def test_deleting_a_position_removes_its_transactions(user, instruments, client_for):
    position = buy(user).position
    response = client_for(user).post(
        reverse("dashboard:position_delete", args=[position.pk])
    )
    assert response.status_code == 302
    assert not Position.objects.exists() and not Transaction.objects.exists()


def test_pages_need_login(client, instruments):
    for name in ("dashboard:portfolio", "dashboard:transactions_export"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_position_page_offers_the_day_where_its_instrument_trades(
    user, instruments, client_for, new_york_evening
):
    """At 20:00 in New York the UTC date is already tomorrow's: a stock's
    forms offer New York's date (its day P/L counts it), a coin's UTC's."""
    for symbol, today in (("AAPL", "2026-12-06"), ("BTC/USD", "2026-12-07")):
        position = PositionFactory(
            owner=user, instrument=instruments[symbol],
            quantity=Decimal(1), average_cost=Decimal(100),
        )  # fmt: skip
        page = client_for(user).get(reverse("dashboard:position", args=[position.pk]))
        dates = re.findall(
            r'<input type="date" name="([\w-]+)" value="([\d-]+)"',
            page.content.decode(),
        )
        assert dates == [("date", today), ("close-date", today)], (symbol, dates)


def test_the_portfolio_form_offers_each_asset_class_its_day(
    user, instruments, client_for, new_york_evening
):
    """At 20:00 in New York the portfolio page's form, whose instrument is
    typed later, offers New York's date and tells the page each class's day
    (portfolio.js offers a coin's once its symbol is typed)."""
    page = client_for(user).get(reverse("dashboard:portfolio")).content.decode()
    (tag,) = re.findall(r'<input type="date" name="date"[^>]*>', page)
    assert 'value="2026-12-06"' in tag
    days = json.loads(html.unescape(re.search(r'data-days="([^"]*)"', tag)[1]))
    assert days == {
        "equity": "2026-12-06", "etf": "2026-12-06", "fx": "2026-12-06",
        "crypto": "2026-12-07",
    }  # fmt: skip
    assert f'data-search-url="{reverse("dashboard:search")}"' in tag
