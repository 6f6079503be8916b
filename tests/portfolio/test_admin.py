"""Admin keeps its list of positions; transactions are edited inline, the
aggregate is folded from them on save and an oversell is refused."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from marketdata.models import Position
from portfolio.services import transaction_add

pytestmark = pytest.mark.django_db


def inline(rows, *, initial=0):
    data = {
        "transactions-TOTAL_FORMS": str(len(rows)),
        "transactions-INITIAL_FORMS": str(initial),
        "transactions-MIN_NUM_FORMS": "0",
        "transactions-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"transactions-{i}-{key}"] = value
    return data


def test_admin_lists_positions_and_folds_inline_transactions(
    staff_user, user, instruments, client_for
):
    transaction_add(
        owner=user, symbol="AAPL", kind="buy", day=date(2026, 1, 5),
        quantity=Decimal(10), price=Decimal(100),
    )  # fmt: skip
    position = Position.objects.get()
    client = client_for(staff_user)
    listing = client.get(reverse("admin:marketdata_position_changelist"))
    assert listing.status_code == 200 and "AAPL" in listing.content.decode()
    url = reverse("admin:marketdata_position_change", args=[position.pk])
    first = position.transactions.get()
    base = {"owner": user.pk, "instrument": instruments["AAPL"].pk}
    existing = {"id": first.pk, "position": position.pk, "date": "2026-01-05",
                "kind": "buy", "quantity": "10", "price": "100", "fee": "0"}  # fmt: skip
    oversell = {"date": "2026-01-06", "kind": "sell", "quantity": "11", "price": "1",
                "fee": "0"}  # fmt: skip
    response = client.post(url, {**base, **inline([existing, oversell], initial=1)})
    assert response.status_code == 200
    assert "The sell of 11 on 2026-01-06 is more than the 10 held then" in (
        response.content.decode()
    )
    assert position.transactions.count() == 1
    sell = {**oversell, "quantity": "4", "price": "110", "fee": "2"}
    response = client.post(url, {**base, **inline([existing, sell], initial=1)})
    assert response.status_code == 302
    position.refresh_from_db()
    # 4 × 110 − 2 − 4 × 100 = +38
    assert (position.quantity, position.realized_pl) == (Decimal(6), Decimal(38))
