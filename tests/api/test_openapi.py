"""The API through its own OpenAPI schema: every documented path and method
is called once with a token, on real PostgreSQL and Redis, and its answer
is checked against the documented response schema. An endpoint added
without a call here fails `test_every_documented_operation_is_called`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from alerts.models import AlertRule
from alerts.services import alert_rule_create
from marketdata.anomalies import Anomaly
from marketdata.models import Position
from marketdata.services import anomalies_record, bars_upsert, watchlist_create
from portfolio.services import transaction_add
from tests.factories import AlertEventFactory, PositionFactory

pytestmark = pytest.mark.django_db


def anomaly_found(symbol, ts):
    return Anomaly(
        symbol=symbol, kind="return_spike", ts=ts, score=7.0, value=0.03,
        baseline=0.0, direction="up", explain="+3.00% in one minute.",
    )  # fmt: skip


@pytest.fixture
def desk(user, instruments):
    """One of everything the API shows, owned by `user`."""
    btc = instruments["BTC/USD"]
    now = timezone.now().replace(second=0, microsecond=0)
    price = Decimal("100")
    rows = []
    for i in range(240):
        close = price + Decimal(i % 7 - 3)
        rows.append(
            (btc.id, "1m", now - timedelta(minutes=240 - i), price, price + 4,
             price - 4, close, Decimal(10), None, 5)
        )  # fmt: skip
        price = close
    bars_upsert(rows=rows, provider="test")
    anomalies_record(anomalies=[(btc.id, anomaly_found(btc.symbol, now))])
    watchlist = watchlist_create(owner=user, name="Core", symbols=["AAPL", "MSFT"])
    position = PositionFactory(
        owner=user, instrument=instruments["AAPL"], quantity=10, average_cost=150
    )
    # NVDA: one buy ten days ago, changed and then deleted (the position
    # goes with it) through the API.
    nvda_buy = transaction_add(
        owner=user,
        symbol="NVDA",
        kind="buy",
        day=timezone.localdate() - timedelta(days=10),
        quantity=Decimal(3),
        price=Decimal(100),
    )
    rule = alert_rule_create(
        owner=user, instrument=btc, kind="price", direction="above", level=99
    )
    event = AlertEventFactory(
        owner=user,
        rule=rule,
        instrument=btc,
        kind="price",
        ts=now,
        price=Decimal("101"),
        values={"value": 101.0},
        message="BTC/USD crossed above 99",
    )
    return {
        "watchlist": watchlist,
        "position": position,
        "transaction": nvda_buy,
        "rule": rule,
        "event": event,
    }


def calls(desk) -> dict[tuple[str, str], tuple[dict, dict | None, int]]:
    """(method, documented path) -> (path values, JSON body or query, status).
    Ordered so deletes come after everything that reads the same object."""
    wl = desk["watchlist"].pk
    rule = desk["rule"].pk
    pos, tx = desk["position"].pk, desk["transaction"].pk
    month_ago = (timezone.localdate() - timedelta(days=30)).isoformat()
    return {
        ("get", "/api/instruments"): ({}, {"q": "btc"}, 200),
        ("get", "/api/instruments/{symbol}"): ({"symbol": "BTC/USD"}, None, 200),
        ("get", "/api/instruments/{symbol}/bars"): (
            {"symbol": "BTC/USD"},
            {"timeframe": "5m", "limit": "10", "indicators": "sma:3,rsi:14"},
            200,
        ),
        ("get", "/api/instruments/{symbol}/patterns"): (
            {"symbol": "BTC/USD"},
            {"timeframe": "1m", "limit": "200", "kinds": "double_top,support"},
            200,
        ),
        ("get", "/api/instruments/{symbol}/candles"): (
            {"symbol": "BTC/USD"},
            {"timeframe": "5m", "limit": "10"},
            200,
        ),
        ("get", "/api/anomalies"): ({}, {"symbol": "BTC/USD", "min_score": 5}, 200),
        ("get", "/api/watchlists"): ({}, None, 200),
        ("post", "/api/watchlists"): ({}, {"name": "New", "symbols": ["SPY"]}, 201),
        ("get", "/api/watchlists/{watchlist_id}"): ({"watchlist_id": wl}, None, 200),
        ("patch", "/api/watchlists/{watchlist_id}"): (
            {"watchlist_id": wl},
            {"name": "Core 2", "order": ["MSFT", "AAPL"]},
            200,
        ),
        ("post", "/api/watchlists/{watchlist_id}/items"): (
            {"watchlist_id": wl},
            {"symbol": "NVDA"},
            201,
        ),
        ("delete", "/api/watchlists/{watchlist_id}/items/{symbol}"): (
            {"watchlist_id": wl, "symbol": "NVDA"},
            None,
            204,
        ),
        ("get", "/api/positions"): ({}, None, 200),
        ("get", "/api/positions/{position_id}"): ({"position_id": pos}, None, 200),
        ("post", "/api/positions"): (
            {},
            {"symbol": "msft", "date": month_ago, "quantity": "5", "price": "400"},
            201,
        ),
        # AAPL (10 @ 150 before transactions existed): sell 4 @ 170 − 1 fee.
        ("post", "/api/positions/{position_id}/transactions"): (
            {"position_id": pos},
            {"kind": "sell", "quantity": "4", "price": "170", "fee": "1"},
            201,
        ),
        ("get", "/api/positions/{position_id}/transactions"): (
            {"position_id": pos},
            None,
            200,
        ),
        ("get", "/api/transactions/{transaction_id}"): (
            {"transaction_id": tx},
            None,
            200,
        ),
        ("patch", "/api/transactions/{transaction_id}"): (
            {"transaction_id": tx},
            {"quantity": "4", "note": "one more"},
            200,
        ),
        ("post", "/api/transactions/import"): (
            {},
            {
                "csv": f"date,symbol,type,quantity,price,fee,note\n{month_ago},SPY,buy,2,500,0,\n"
            },
            201,
        ),  # fmt: skip
        # The remaining 6 @ 180.
        ("post", "/api/positions/{position_id}/close"): (
            {"position_id": pos},
            {"price": "180"},
            200,
        ),
        ("delete", "/api/transactions/{transaction_id}"): (
            {"transaction_id": tx},
            None,
            204,
        ),
        ("get", "/api/alerts/rules"): ({}, None, 200),
        ("post", "/api/alerts/rules"): (
            {},
            {
                "symbol": "AAPL",
                "kind": "rsi",
                "level": 70,
                "timeframe": "5m",
                "period": 14,
            },
            201,
        ),  # fmt: skip
        ("post", "/api/alerts/dry-run"): (
            {},
            {"symbol": "BTC/USD", "kind": "price", "level": "101.5", "days": 1},
            200,
        ),
        ("get", "/api/alerts/rules/{rule_id}"): ({"rule_id": rule}, None, 200),
        ("patch", "/api/alerts/rules/{rule_id}"): (
            {"rule_id": rule},
            {"level": "98.5", "note": "via API"},
            200,
        ),
        ("post", "/api/alerts/rules/{rule_id}/dry-run"): (
            {"rule_id": rule},
            {"days": 1},
            200,
        ),
        ("get", "/api/alerts/events"): ({}, {"symbol": "BTC/USD"}, 200),
        ("post", "/api/alerts/events/seen"): ({}, {"ids": [desk["event"].pk]}, 200),
        ("delete", "/api/alerts/rules/{rule_id}"): ({"rule_id": rule}, None, 204),
        ("delete", "/api/watchlists/{watchlist_id}"): ({"watchlist_id": wl}, None, 204),
        ("delete", "/api/positions/{position_id}"): ({"position_id": pos}, None, 204),
    }


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def conforms(value, schema: dict, spec: dict, where: str = "$") -> list[str]:
    """What in `value` the (resolved) JSON schema does not allow: types,
    required keys, array items, enums. Enough of JSON Schema for this API."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        if any(not conforms(value, s, spec, where) for s in schema["anyOf"]):
            return []
        return [f"{where}: {value!r} matches none of {schema['anyOf']}"]
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind in checks and not checks[kind](value):
        return [f"{where}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    problems = []
    if kind == "object":
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing {name!r}")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                problems += conforms(value[name], sub, spec, f"{where}.{name}")
    if kind == "array":
        for i, item in enumerate(value):
            problems += conforms(item, schema.get("items", {}), spec, f"{where}[{i}]")
    return problems


@pytest.fixture
def spec(client, user):
    client.force_login(user)
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def documented(spec) -> set[tuple[str, str]]:
    methods = {"get", "post", "put", "patch", "delete"}
    return {
        (method, path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in methods
    }


def test_every_documented_operation_is_called(spec, desk):
    assert documented(spec) == set(calls(desk))


def test_each_documented_operation_answers_as_documented(spec, desk, token, bearer):
    api = bearer(token)
    bodies = {}
    for (method, path), (values, data, status) in calls(desk).items():
        url = path.format(**values)
        if method in ("get", "delete"):
            response = getattr(api, method)(url, data or {})
        else:
            response = getattr(api, method)(url, data, content_type="application/json")
        assert response.status_code == status, (method, path, response.content)
        documented_responses = spec["paths"][path][method]["responses"]
        assert str(status) in documented_responses, (method, path, status)
        if status == 204:
            continue
        body = bodies[method, path] = response.json()
        schema = documented_responses[str(status)]["content"]["application/json"][
            "schema"
        ]
        assert conforms(body, schema, spec) == [], (method, path, body)

    assert [a["kind"] for a in bodies["get", "/api/anomalies"]] == ["return_spike"]
    bars = bodies["get", "/api/instruments/{symbol}/bars"]
    assert len(bars["bars"]) == 10 and set(bars["indicators"]) == {"sma:3", "rsi:14"}
    assert bodies["post", "/api/alerts/dry-run"]["bars"] > 200
    assert bodies["post", "/api/alerts/events/seen"] == {"marked": 1}
    # Positions: 4 sold at 170 − 1 against the 150 average (+79), the other 6
    # closed at 180 (+180); MSFT opened, SPY imported, NVDA gone with its buy.
    closed = bodies["post", "/api/positions/{position_id}/close"]
    assert (Decimal(closed["quantity"]), Decimal(closed["realized_pl"])) == (0, 259)
    opened = bodies["post", "/api/positions"]
    assert (opened["symbol"], Decimal(opened["quantity"])) == ("MSFT", 5)
    assert bodies["post", "/api/transactions/import"] == {
        "imported": 1,
        "positions": ["SPY"],
        "skipped": [],
    }
    listed = bodies["get", "/api/positions/{position_id}/transactions"]
    assert [(t["kind"], Decimal(t["quantity"])) for t in listed] == [
        ("buy", 10),
        ("sell", 4),
    ]
    assert (
        Decimal(bodies["patch", "/api/transactions/{transaction_id}"]["quantity"]) == 4
    )
    assert set(
        Position.objects.filter(owner=desk["position"].owner).values_list(
            "instrument__symbol", flat=True
        )
    ) == {"MSFT", "SPY"}
    # The writes happened: the rule was changed then deleted through the API,
    # the event marked seen, the watchlist renamed then deleted.
    assert not AlertRule.objects.filter(pk=desk["rule"].pk).exists()
    desk["event"].refresh_from_db()
    assert desk["event"].seen_at is not None
    assert (
        not desk["watchlist"].__class__.objects.filter(pk=desk["watchlist"].pk).exists()
    )


def test_docs_page_is_served_locally_for_logged_in_users(client, user):
    response = client.get("/api/docs")
    assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(user)
    response = client.get("/api/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui-bundle.js" in page and "/api/openapi.json" in page
    assert "cdn.jsdelivr" not in page
