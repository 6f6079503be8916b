"""Positions and transactions through the token API: figures worked out by
hand (weighted average, partial sells, fees, day P/L, weight), oversells
refused with the field named and nothing saved, another user's rows 404 on
every path, a read-only token 403 on every write, CSV import by line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketdata.calendar import NEW_YORK
from marketdata.models import Position, Transaction
from portfolio.services import transaction_add
from streaming.snapshots import snapshots_put
from tests.factories import SnapshotFactory

pytestmark = pytest.mark.django_db
JSON = "application/json"


def figures(body: dict, *names: str) -> tuple:
    return tuple(None if body[n] is None else Decimal(body[n]) for n in names)


@pytest.fixture
def today():
    """The session day of equities (the snapshots' day P/L splits on it)."""
    return datetime.now(UTC).astimezone(NEW_YORK).date()


def test_open_buy_sell_fee_and_close_match_hand_figures(
    user, token, bearer, instruments, today
):
    api = bearer(token)
    long_ago = (today - timedelta(days=60)).isoformat()
    opened = api.post(
        "/api/positions",
        {"symbol": "aapl", "date": long_ago, "quantity": 10, "price": "100", "fee": 5},
        content_type=JSON,
    )
    assert opened.status_code == 201, opened.content
    pid = opened.json()["id"]
    url = f"/api/positions/{pid}/transactions"

    def add(**body):
        response = api.post(url, body, content_type=JSON)
        assert response.status_code == 201, response.content
        return response.json()

    # 10 @ 100 + 5, 10 @ 120 + 5: 20 held, cost 2,210, average 110.50.
    add(kind="buy", date=(today - timedelta(days=50)).isoformat(), quantity="10",
        price="120", fee="5")  # fmt: skip
    # Sell 5 @ 130 − 2.50: 650 − 2.50 − 552.50 = +95 realized; fee 10: +85.
    add(kind="sell", date=(today - timedelta(days=40)).isoformat(), quantity="5",
        price="130", fee="2.5")  # fmt: skip
    fee = add(kind="fee", date=(today - timedelta(days=30)).isoformat(), fee="10")
    assert (fee["kind"], fee["symbol"], Decimal(fee["fee"])) == ("fee", "AAPL", 10)
    # Today: sell 5 more @ 124: 620 − 552.50 = +67.50 -> realized 152.50.
    add(kind="sell", quantity="5", price="124")
    snapshots_put(
        snapshots=[SnapshotFactory(symbol="AAPL", last="125", prev_close="120")]
    )
    # MSFT held as well, so AAPL's weight is not trivially 100%.
    transaction_add(
        owner=user, symbol="MSFT", kind="buy", day=today - timedelta(days=60),
        quantity=Decimal(1), price=Decimal(400),
    )  # fmt: skip
    snapshots_put(
        snapshots=[SnapshotFactory(symbol="MSFT", last="375", prev_close="370")]
    )

    body = api.get(f"/api/positions/{pid}").json()
    assert figures(body, "quantity", "average_cost", "realized_pl") == (
        10,
        Decimal("110.5"),
        Decimal("152.5"),
    )
    # 10 × 125 = 1,250; unrealized 1,250 − 1,105 = 145; total 297.50 on 2,210
    # bought = 13.46%; day: 1,250 − 15 × 120 + 620 = 70; weight 1,250 / 1,625.
    assert figures(body, "last", "value", "unrealized_pl", "day_pl", "total_pl") == (
        125,
        1250,
        145,
        70,
        Decimal("297.5"),
    )
    assert round(Decimal(body["return_pct"]), 2) == Decimal("13.46")
    assert round(Decimal(body["weight"]), 2) == Decimal("76.92")
    assert [p["symbol"] for p in api.get("/api/positions").json()] == ["AAPL", "MSFT"]

    listed = api.get(url).json()
    assert [(t["kind"], t["date"]) for t in listed][-1] == ("sell", today.isoformat())
    assert len(listed) == 5

    closed = api.post(
        f"/api/positions/{pid}/close", {"price": "130", "fee": "1"}, content_type=JSON
    )
    assert closed.status_code == 200, closed.content
    # 10 @ 130 − 1 against 1,105: +194 -> 346.50; nothing held, nothing valued.
    assert figures(closed.json(), "quantity", "realized_pl", "value") == (
        0,
        Decimal("346.5"),
        0,
    )
    again = api.post(f"/api/positions/{pid}/close", {"price": "1"}, content_type=JSON)
    assert again.status_code == 400
    assert "already closed" in again.json()["error"]


def test_a_date_left_out_is_the_day_where_the_instrument_trades(
    user, token, bearer, instruments, new_york_evening
):
    """At 20:00 in New York the UTC date is already tomorrow's: a stock bought
    without a date belongs to New York's day (its day P/L counts it), a coin
    to UTC's (crypto sessions are UTC days), on open, add and close."""
    api = bearer(token)
    dates = {}
    for symbol in ("AAPL", "BTC/USD"):
        opened = api.post(
            "/api/positions",
            {"symbol": symbol, "quantity": 2, "price": "100"},
            content_type=JSON,
        )
        assert opened.status_code == 201, opened.content
        pid = opened.json()["id"]
        url = f"/api/positions/{pid}/transactions"
        added = api.post(url, {"kind": "buy", "quantity": 1, "price": "101"},
                         content_type=JSON)  # fmt: skip
        assert added.status_code == 201, added.content
        closed = api.post(f"/api/positions/{pid}/close", {"price": "102"},
                          content_type=JSON)  # fmt: skip
        assert closed.status_code == 200, closed.content
        dates[symbol] = {t["date"] for t in api.get(url).json()}
    assert dates == {"AAPL": {"2026-12-06"}, "BTC/USD": {"2026-12-07"}}


def test_oversells_are_refused_naming_the_field_and_nothing_is_saved(
    user, token, bearer, instruments, today
):
    api = bearer(token)
    buy = transaction_add(
        owner=user, symbol="AAPL", kind="buy", day=today - timedelta(days=10),
        quantity=Decimal(10), price=Decimal(100),
    )  # fmt: skip
    sell = transaction_add(
        owner=user, symbol="AAPL", kind="sell", day=today - timedelta(days=5),
        quantity=Decimal(6), price=Decimal(110),
    )  # fmt: skip
    pid = buy.position_id
    before = list(Transaction.objects.values_list("id", "kind", "date", "quantity"))

    response = api.post(
        f"/api/positions/{pid}/transactions",
        {"kind": "sell", "quantity": "5", "price": "120"},
        content_type=JSON,
    )
    assert response.status_code == 400
    body = response.json()
    assert list(body["fields"]) == ["quantity"]
    assert body["error"].startswith("quantity: AAPL: The sell of 5 on ")
    assert "more than the 4 held then" in body["error"]

    # A change to the sell, or moving it before the buy, oversells as well.
    for change in ({"quantity": "11"}, {"date": (today - timedelta(days=20)).isoformat()}):  # fmt: skip
        response = api.patch(f"/api/transactions/{sell.pk}", change, content_type=JSON)
        assert response.status_code == 400, change
        assert "quantity" in response.json()["fields"], change
    # Deleting the buy the sell depends on is refused too.
    response = api.delete(f"/api/transactions/{buy.pk}")
    assert response.status_code == 400
    assert "below zero" in response.json()["error"]

    assert (
        list(Transaction.objects.values_list("id", "kind", "date", "quantity"))
        == before
    )
    position = Position.objects.get(pk=pid)
    assert (position.quantity, position.realized_pl) == (4, 60)


def test_bad_values_are_400_naming_the_field(user, token, bearer, instruments):
    api = bearer(token)
    cases = [
        ({"symbol": "NOPE", "quantity": 1, "price": 1}, "symbol"),
        ({"symbol": "AAPL", "quantity": "-1", "price": 1}, "quantity"),
        ({"symbol": "AAPL", "quantity": "0", "price": 1}, "quantity"),
        ({"symbol": "AAPL", "quantity": "abc", "price": 1}, "quantity"),
        ({"symbol": "AAPL", "quantity": 1, "price": 1, "date": "2999-01-01"}, "date"),
        ({"symbol": "AAPL", "quantity": 1}, "price"),
    ]
    for body, field in cases:
        response = api.post("/api/positions", body, content_type=JSON)
        assert response.status_code == 400, body
        assert field in response.json()["fields"], (body, response.json())
    response = api.post("/api/positions", "{not json", content_type=JSON)
    assert response.status_code == 400
    assert "Malformed JSON" in response.json()["error"]
    assert not Position.objects.exists()

    made = api.post(
        "/api/positions",
        {"symbol": "AAPL", "quantity": 1, "price": 1},
        content_type=JSON,
    )
    assert made.status_code == 201
    pid = made.json()["id"]
    # One position per instrument: the next buy goes to its transactions.
    twice = api.post(
        "/api/positions",
        {"symbol": "AAPL", "quantity": 1, "price": 1},
        content_type=JSON,
    )
    assert twice.status_code == 400
    assert f"/api/positions/{pid}/transactions" in twice.json()["fields"]["symbol"][0]
    kind = api.post(
        f"/api/positions/{pid}/transactions",
        {"kind": "gift", "quantity": 1},
        content_type=JSON,
    )
    assert kind.status_code == 400 and "kind" in kind.json()["fields"]
    fee = api.post(
        f"/api/positions/{pid}/transactions",
        {"kind": "fee", "quantity": 1, "fee": 2},
        content_type=JSON,
    )
    assert fee.status_code == 400 and "quantity" in fee.json()["fields"]
    assert Transaction.objects.count() == 1


def test_another_users_positions_and_transactions_are_404(
    user, other_user, token, bearer, instruments, today
):
    theirs = transaction_add(
        owner=other_user, symbol="AAPL", kind="buy", day=today,
        quantity=Decimal(10), price=Decimal(100),
    )  # fmt: skip
    pid, tid = theirs.position_id, theirs.pk
    api = bearer(token)
    requests = [
        ("get", f"/api/positions/{pid}", None),
        ("delete", f"/api/positions/{pid}", None),
        ("post", f"/api/positions/{pid}/close", {"price": 1}),
        ("get", f"/api/positions/{pid}/transactions", None),
        ("post", f"/api/positions/{pid}/transactions",
         {"kind": "sell", "quantity": 10, "price": 1}),
        ("get", f"/api/transactions/{tid}", None),
        ("patch", f"/api/transactions/{tid}", {"quantity": 1}),
        ("delete", f"/api/transactions/{tid}", None),
    ]  # fmt: skip
    for method, url, body in requests:
        if body is None:
            response = getattr(api, method)(url)
        else:
            response = getattr(api, method)(url, body, content_type=JSON)
        assert response.status_code == 404, (method, url)
        assert "No such" in response.json()["error"]
    # Opening "their" symbol makes the caller's own position, theirs untouched.
    mine = api.post(
        "/api/positions",
        {"symbol": "AAPL", "quantity": 2, "price": 5},
        content_type=JSON,
    )
    assert mine.status_code == 201 and mine.json()["id"] != pid
    assert [p["id"] for p in api.get("/api/positions").json()] == [mine.json()["id"]]
    theirs.refresh_from_db()
    assert theirs.quantity == 10 and theirs.position.quantity == 10


def test_a_read_only_token_reads_but_every_write_is_403(
    user, make_token, bearer, instruments, today
):
    row = transaction_add(
        owner=user, symbol="AAPL", kind="buy", day=today,
        quantity=Decimal(10), price=Decimal(100),
    )  # fmt: skip
    api = bearer(make_token(user, scope="read"))
    pid, tid = row.position_id, row.pk
    assert api.get(f"/api/positions/{pid}/transactions").status_code == 200
    assert api.get(f"/api/transactions/{tid}").status_code == 200
    writes = [
        ("post", "/api/positions", {"symbol": "MSFT", "quantity": 1, "price": 1}),
        ("delete", f"/api/positions/{pid}", None),
        ("post", f"/api/positions/{pid}/close", {"price": 1}),
        ("post", f"/api/positions/{pid}/transactions",
         {"kind": "sell", "quantity": 1, "price": 1}),
        ("patch", f"/api/transactions/{tid}", {"quantity": 1}),
        ("delete", f"/api/transactions/{tid}", None),
        ("post", "/api/transactions/import",
         {"csv": "date,symbol,type,quantity,price\n2026-01-02,MSFT,buy,1,1\n"}),
    ]  # fmt: skip
    for method, url, body in writes:
        if body is None:
            response = getattr(api, method)(url)
        else:
            response = getattr(api, method)(url, body, content_type=JSON)
        assert response.status_code == 403, (method, url)
        assert "read-only" in response.json()["error"]
    assert list(Transaction.objects.values_list("pk", flat=True)) == [tid]
    assert Position.objects.get().quantity == 10


def test_import_lists_bad_lines_and_imports_nothing_unless_skip_bad(
    user, token, bearer, instruments, today
):
    api = bearer(token)
    d = (today - timedelta(days=3)).isoformat()
    text = (
        "date,symbol,type,quantity,price,fee,note\n"
        f"{d},AAPL,buy,10,100,1,first\n"
        f"{d},NOPE,buy,1,1,0,\n"
        f"{d},AAPL,sell,20,110,0,too many\n"
        f"{d},MSFT,buy,2,400,0,\n"
    )
    refused = api.post("/api/transactions/import", {"csv": text}, content_type=JSON)
    assert refused.status_code == 400
    lines = refused.json()["fields"]["csv"]
    assert [line.split(":")[0] for line in lines] == ["line 3", "line 4"]
    assert "NOPE" in lines[0] and "more than the 10 held" in lines[1]
    assert not Transaction.objects.exists()

    done = api.post(
        "/api/transactions/import", {"csv": text, "skip_bad": True}, content_type=JSON
    )
    assert done.status_code == 201
    body = done.json()
    assert (body["imported"], body["positions"]) == (2, ["AAPL", "MSFT"])
    assert [s["line"] for s in body["skipped"]] == [3, 4]
    positions = {
        p["symbol"]: Decimal(p["quantity"]) for p in api.get("/api/positions").json()
    }
    assert positions == {"AAPL": 10, "MSFT": 2}
