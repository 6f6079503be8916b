"""Who may call the API and what a bad request gets back: 401 for a missing,
bad or revoked token, 403 for a read-only token that writes, 400 naming
the field for malformed JSON and bad values, 404 for another user's objects,
429 with Retry-After past the token's rate limit."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from alerts.models import AlertRule
from alerts.services import alert_rule_create
from api.models import ApiToken
from api.services import api_token_revoke
from core.redis import key, redis_client
from marketdata.models import Watchlist
from marketdata.services import watchlist_create
from tests.factories import AlertEventFactory, PositionFactory

pytestmark = pytest.mark.django_db
JSON = "application/json"


def test_no_credentials_is_401(instruments):
    response = Client().get("/api/watchlists")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "presented",
    ["tl_nothere1_abc", "tl_short_x", "not-a-token", "", "tl_"],
)
def test_bad_token_is_401(user, token, bearer, presented):
    response = bearer(presented).get("/api/watchlists")
    assert response.status_code == 401


def test_right_prefix_wrong_secret_is_401(user, token, bearer):
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    response = bearer(forged).get("/api/watchlists")
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or revoked API token."}


def test_revoked_token_is_401_and_not_rescued_by_a_session(user, token, bearer):
    api = bearer(token)
    assert api.get("/api/watchlists").status_code == 200
    api_token_revoke(user=user, token_id=ApiToken.objects.get(user=user).pk)
    api.force_login(user)  # a session as well: the dead token still wins
    response = api.get("/api/watchlists")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]


def test_inactive_users_token_is_401(user, token, bearer):
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert bearer(token).get("/api/watchlists").status_code == 401


def test_read_token_reads_but_cannot_write(user, instruments, make_token, bearer):
    api = bearer(make_token(user, scope="read"))
    assert api.get("/api/watchlists").status_code == 200
    for method, url, body in [
        ("post", "/api/watchlists", {"name": "X"}),
        ("post", "/api/alerts/rules", {"symbol": "AAPL", "kind": "price", "level": 1}),
    ]:
        response = getattr(api, method)(url, body, content_type=JSON)
        assert response.status_code == 403
        assert "read-only" in response.json()["error"]
    watchlist = watchlist_create(owner=user, name="Keep")
    assert api.delete(f"/api/watchlists/{watchlist.pk}").status_code == 403
    assert Watchlist.objects.filter(pk=watchlist.pk).exists()
    assert not AlertRule.objects.exists()


def test_malformed_json_is_400_and_stores_nothing(user, instruments, token, bearer):
    response = bearer(token).post("/api/watchlists", '{"name": "X",', content_type=JSON)
    assert response.status_code == 400
    assert response.json()["error"].startswith("Malformed JSON body at line 1")
    assert not Watchlist.objects.exists()


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800"])
def test_text_postgres_cannot_store_is_400(user, instruments, token, bearer, escape):
    body = '{"name": "a' + escape + 'b"}'
    response = bearer(token).post("/api/watchlists", body, content_type=JSON)
    assert response.status_code == 400
    assert "The JSON body contains" in response.json()["error"]
    assert not Watchlist.objects.exists()


def test_wrong_types_are_400_naming_each_field(user, instruments, token, bearer):
    response = bearer(token).post(
        "/api/alerts/rules",
        {"symbol": "AAPL", "kind": "price", "level": "lots", "one_shot": "maybe"},
        content_type=JSON,
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body["fields"]) == {"level", "one_shot"}
    assert body["error"].startswith("level:")


def test_rule_checks_are_the_forms_and_name_the_field(user, instruments, token, bearer):
    api = bearer(token)
    cases = [
        ({"kind": "price", "level": 5}, "symbol"),
        ({"symbol": "NOPE", "kind": "price", "level": 5}, "symbol"),
        ({"symbol": "AAPL", "kind": "price"}, "level"),
        ({"symbol": "AAPL", "kind": "rsi", "level": 150, "timeframe": "5m",
          "period": 14}, "level"),
        ({"symbol": "AAPL", "kind": "ma_cross", "timeframe": "5m", "ma_type": "sma",
          "fast_period": 50, "slow_period": 20}, "slow_period"),
        ({"symbol": "AAPL", "kind": "teleport"}, "kind"),
    ]  # fmt: skip
    for body, field in cases:
        response = api.post("/api/alerts/rules", body, content_type=JSON)
        assert response.status_code == 400, body
        assert field in response.json()["fields"], (body, response.json())
    assert not AlertRule.objects.exists()


def test_watchlist_input_errors_name_the_field(user, instruments, token, bearer):
    api = bearer(token)
    watchlist_create(owner=user, name="Taken")
    response = api.post("/api/watchlists", {"name": "Taken"}, content_type=JSON)
    assert response.status_code == 400 and "name" in response.json()["fields"]
    response = api.post(
        "/api/watchlists",
        {"name": "New", "symbols": ["AAPL", "ZZZZ"]},
        content_type=JSON,
    )
    assert response.status_code == 400
    assert "ZZZZ" in response.json()["fields"]["symbols"][0]
    assert not Watchlist.objects.filter(name="New").exists()


@pytest.fixture
def theirs(other_user, instruments):
    btc = instruments["BTC/USD"]
    rule = alert_rule_create(owner=other_user, instrument=btc, kind="price", level=99)
    return {
        "watchlist": watchlist_create(owner=other_user, name="Theirs", symbols=["AAPL"]),
        "position": PositionFactory(
            owner=other_user, instrument=btc, quantity=1, average_cost=50000
        ),
        "rule": rule,
        "event": AlertEventFactory(
            owner=other_user, rule=rule, instrument=btc, kind="price",
            ts=timezone.now(), price=Decimal(100), message="theirs",
        ),
    }  # fmt: skip


def test_another_users_objects_are_404_on_every_path(user, token, bearer, theirs):
    api = bearer(token)
    wl, rule = theirs["watchlist"].pk, theirs["rule"].pk
    requests = [
        ("get", f"/api/watchlists/{wl}", None),
        ("patch", f"/api/watchlists/{wl}", {"name": "Mine now"}),
        ("delete", f"/api/watchlists/{wl}", None),
        ("post", f"/api/watchlists/{wl}/items", {"symbol": "MSFT"}),
        ("delete", f"/api/watchlists/{wl}/items/AAPL", None),
        ("get", f"/api/positions/{theirs['position'].pk}", None),
        ("get", f"/api/alerts/rules/{rule}", None),
        ("patch", f"/api/alerts/rules/{rule}", {"level": 1}),
        ("delete", f"/api/alerts/rules/{rule}", None),
        ("post", f"/api/alerts/rules/{rule}/dry-run", {"days": 1}),
    ]
    for method, url, body in requests:
        if body is None:
            response = getattr(api, method)(url)
        else:
            response = getattr(api, method)(url, body, content_type=JSON)
        assert response.status_code == 404, (method, url)
        assert "error" in response.json()
    # Lists show only the caller's own; marking their alert seen marks nothing.
    assert api.get("/api/watchlists").json() == []
    assert api.get("/api/positions").json() == []
    assert api.get("/api/alerts/rules").json() == []
    assert api.get("/api/alerts/events").json() == []
    seen = api.post(
        "/api/alerts/events/seen", {"ids": [theirs["event"].pk]}, content_type=JSON
    )
    assert seen.json() == {"marked": 0}
    theirs["watchlist"].refresh_from_db()
    assert theirs["watchlist"].name == "Theirs"
    assert theirs["watchlist"].items.count() == 1
    theirs["rule"].refresh_from_db()
    assert theirs["rule"].level == 99


@override_settings(API_RATE_LIMIT=3, API_RATE_WINDOW=60)
def test_rate_limit_is_per_token_with_retry_after(user, make_token, bearer):
    first, second = bearer(make_token(user)), bearer(make_token(user, name="other"))
    assert [first.get("/api/positions").status_code for _ in range(3)] == [200] * 3
    response = first.get("/api/positions")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "Rate limit" in response.json()["error"]
    # Another token of the same user has its own budget; the session none.
    assert second.get("/api/positions").status_code == 200
    session = Client()
    session.force_login(user)
    assert all(session.get("/api/positions").status_code == 200 for _ in range(5))
    # The counter lives under the installation's namespace.
    token_id = ApiToken.objects.get(name="script").pk
    names = [
        k.decode() for k in redis_client().scan_iter(match=key("api", "rate", "*"))
    ]
    assert any(n.startswith(key("api", "rate", str(token_id))) for n in names)


def test_session_writes_need_csrf(user, instruments):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/watchlists", {"name": "X"}, content_type=JSON)
    assert response.status_code == 403
    assert not Watchlist.objects.exists()


def test_chart_bars_endpoint_takes_a_token_too(user, instruments, token, bearer):
    response = bearer(token).get("/api/instruments/BTC/USD/bars", {"limit": "5"})
    assert response.status_code == 200
    assert response.json()["symbol"] == "BTC/USD"
    assert bearer(token).get("/api/instruments/BTC/USD/bars/").status_code == 200
    assert bearer("tl_bad").get("/api/instruments/BTC/USD/bars").status_code == 401


@override_settings(API_RATE_LIMIT=1, API_RATE_WINDOW=60)
def test_redis_away_lets_token_requests_through(
    user, token, bearer, redis_outage_settings, caplog
):
    """The limit needs Redis; while it is away the API keeps answering
    (one log line), and the limit holds again when it is back."""
    api = bearer(token)
    redis_outage_settings.stop()
    assert [api.get("/api/positions").status_code for _ in range(3)] == [200] * 3
    assert any("counting an API request" in r.getMessage() for r in caplog.records)
    redis_outage_settings.start()
    # Counting resumes at the next probe (at most a second later).
    codes = []
    deadline = time.monotonic() + 10
    while 429 not in codes and time.monotonic() < deadline:
        codes.append(api.get("/api/positions").status_code)
        time.sleep(0.05)
    assert codes[-1] == 429 and set(codes[:-1]) == {200}
