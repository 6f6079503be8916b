"""Positions P/L against figures worked out by hand: weighted average cost,
buy fees in the cost, partial sells realized against the average, a stand-
alone fee, day P/L with the session's own trades, % return and weight; as the
portfolio page shows them and as the position rows store them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from marketdata.calendar import NEW_YORK
from marketdata.models import Position
from portfolio.services import transaction_add
from streaming.snapshots import snapshots_put
from tests.factories import SnapshotFactory

pytestmark = pytest.mark.django_db


def cells(html: str, symbol: str) -> dict[str, str]:
    row = re.search(rf'<tr data-symbol="{re.escape(symbol)}".*?</tr>', html, re.S)
    assert row, symbol
    found = dict(re.findall(r'data-p="(\w+)">([^<]*)<', row.group(0)))
    numbers = re.findall(r'<td class="num">([^<]*)</td>', row.group(0))
    found["quantity"], found["average_cost"], found["realized"] = (
        numbers[0],
        numbers[1],
        numbers[2],
    )
    return found


def totals(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]*)<', html))


@pytest.fixture
def book(user, instruments):
    """Two positions; `today` is the session day of the snapshots."""
    now = datetime.now(UTC)
    today = now.astimezone(NEW_YORK).date()
    d = today - timedelta(days=90)

    def add(symbol, kind, day, quantity="0", price="0", fee="0"):
        transaction_add(
            owner=user,
            symbol=symbol,
            kind=kind,
            day=day,
            quantity=Decimal(quantity),
            price=Decimal(price),
            fee=Decimal(fee),
        )

    # AAPL: 10 @ 100 + 5 fee, 10 @ 120 + 5 fee -> 20 held, cost 2,210, avg 110.50
    add("AAPL", "buy", d, "10", "100", "5")
    add("AAPL", "buy", d + timedelta(days=5), "10", "120", "5")
    # sell 5 @ 130 − 2.50 fee: 650 − 2.50 − 5 × 110.50 = +95.00 realized
    add("AAPL", "sell", d + timedelta(days=20), "5", "130", "2.5")
    # a custody fee: realized 95 − 10 = 85.00
    add("AAPL", "fee", d + timedelta(days=30), fee="10")
    # sell 5 @ 100: 500 − 552.50 = −52.50 -> realized 32.50, 10 left at 110.50
    add("AAPL", "sell", d + timedelta(days=40), "5", "100")
    # MSFT: 4 @ 400 long ago; today buy 2 @ 410 + 1 and sell 3 @ 420 − 1
    add("MSFT", "buy", d, "4", "400")
    add("MSFT", "buy", today, "2", "410", "1")
    # avg (1,600 + 821) / 6 = 403.50; realized 1,260 − 1 − 3 × 403.50 = +48.50
    add("MSFT", "sell", today, "3", "420", "1")
    snapshots_put(
        snapshots=[
            SnapshotFactory(
                symbol="AAPL", last="125", prev_close="120", ts=now.isoformat()
            ),
            SnapshotFactory(
                symbol="MSFT", last="415", prev_close="405", ts=now.isoformat()
            ),
        ]
    )
    return today


def test_position_rows_hold_the_weighted_average_and_realized_pl(user, book):
    aapl = Position.objects.get(owner=user, instrument__symbol="AAPL")
    assert aapl.quantity == Decimal(10)
    assert aapl.average_cost == Decimal("110.5")
    assert aapl.realized_pl == Decimal("32.5")
    msft = Position.objects.get(owner=user, instrument__symbol="MSFT")
    assert (msft.quantity, msft.average_cost, msft.realized_pl) == (
        Decimal(3),
        Decimal("403.5"),
        Decimal("48.5"),
    )


def test_portfolio_page_shows_hand_computed_pl(user, book, client_for):
    html = client_for(user).get(reverse("dashboard:portfolio")).content.decode()
    aapl = cells(html, "AAPL")
    # value 10 × 125 = 1,250; unrealized 1,250 − 1,105 = +145; day 10 × 5 = +50;
    # return (32.50 + 145) / 2,210 invested = +8.03 %; weight 1,250 / 2,495
    assert aapl == {
        "quantity": "10",
        "average_cost": "110.50",
        "last": "125.00",
        "value": "1,250.00",
        "day": "+50.00",
        "unrealized": "+145.00",
        "realized": "+32.50",
        "return": "+8.03%",
        "weight": "50.1%",
    }
    msft = cells(html, "MSFT")
    # day: 3 × 415 − 4 × 405 − 821 + 1,259 = +63 (4 × 10 + 2 × 5 − 1 + 3 × 5 − 1)
    # unrealized 3 × 415 − 1,210.50 = +34.50; return 83 / 2,421 = +3.43 %
    assert msft == {
        "quantity": "3",
        "average_cost": "403.50",
        "last": "415.00",
        "value": "1,245.00",
        "day": "+63.00",
        "unrealized": "+34.50",
        "realized": "+48.50",
        "return": "+3.43%",
        "weight": "49.9%",
    }
    assert totals(html) == {
        "value": "2,495.00",
        "day": "+113.00",
        "unrealized": "+179.50",
        "realized": "+81.00",
        "total": "+260.50",
    }


def test_a_closed_position_keeps_its_realized_pl(user, book, client_for):
    client = client_for(user)
    aapl = Position.objects.get(owner=user, instrument__symbol="AAPL")
    response = client.post(
        reverse("dashboard:position_close", args=[aapl.pk]),
        {"close-date": book.isoformat(), "close-price": "126", "close-fee": "1"},
    )
    assert response.status_code == 302
    aapl.refresh_from_db()
    # 10 × 126 − 1 − 1,105 = +154 on top of +32.50
    assert (aapl.quantity, aapl.realized_pl) == (Decimal(0), Decimal("186.5"))
    html = client.get(reverse("dashboard:portfolio")).content.decode()
    closed = re.search(r'<table class="quotes" id="closed">.*?</table>', html, re.S)
    assert closed and "AAPL" in closed.group(0) and "+186.50" in closed.group(0)
    assert 'data-symbol="AAPL" data-decimals' not in html  # not among the open
    # Day P/L of what was closed today: 10 × (126 − 120) − 1 = +59, plus MSFT +63.
    assert totals(html)["day"] == "+122.00"
    assert totals(html)["realized"] == "+235.00"  # 186.50 + 48.50


def test_a_closed_position_no_longer_claims_a_stream_slot(user, book, client_for):
    from marketdata.selectors import instruments_in_use

    aapl = Position.objects.get(owner=user, instrument__symbol="AAPL")
    assert instruments_in_use().filter(symbol="AAPL").exists()
    client_for(user).post(
        reverse("dashboard:position_close", args=[aapl.pk]),
        {"close-date": book.isoformat(), "close-price": "126"},
    )
    assert not instruments_in_use().filter(symbol="AAPL").exists()
    assert instruments_in_use().filter(symbol="MSFT").exists()
