"""Characters PostgreSQL text cannot hold (NUL; lone surrogates) are refused
where they enter over HTTP: 400 with a clear message, never a 500, nothing
stored. Real requests through the whole middleware stack (Django test client)
against real PostgreSQL."""

from __future__ import annotations

import pytest
from django.test import Client

from alerts.models import AlertRule
from marketdata.models import Instrument, Watchlist
from marketdata.services import watchlist_create
from tests.factories import RuleFormFactory

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}
NUL = "\x00"


@pytest.fixture
def trader(user, instruments) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.fixture
def ops(staff_user, instruments) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(staff_user)
    return client


def assert_refused(response) -> None:
    assert response.status_code == 400, response.content[:300]
    assert "NUL" in response.content.decode()


# Every GET entry point a user reaches, with a NUL in the path, a parameter
# value or a parameter name.
GETS = [
    "/api/search?q=AA%00PL",
    "/alerts/?symbol=AA%00PL",
    "/alerts/?page=%00",
    "/alerts/new?symbol=%00",
    "/instruments/AA%00PL/",
    "/instruments/AAPL/?tf=1m%00",
    "/api/instruments/AA%00PL/bars",
    "/api/instruments/AAPL/bars?timeframe=1m&indicators=sma:2%00",
    "/api/instruments/AAPL/bars?%00=1",
    "/?list=%00",
    "/portfolio/?x=%00",
    "/login/?next=/%00",
]
ADMIN_GETS = [
    "/admin/marketdata/instrument/?q=%00",
    "/admin/marketdata/instrument/bars/?symbol=AA%00PL",
    "/admin/marketdata/gap/coverage/?symbol=AA%00PL",
    "/admin/autocomplete/?app_label=marketdata&model_name=watchlistitem"
    "&field_name=instrument&term=%00",
    "/admin/alerts/alertrule/?q=%00",
]


@pytest.mark.parametrize("url", GETS)
def test_get_with_nul_is_refused(trader, url):
    assert_refused(trader.get(url))


@pytest.mark.parametrize("url", ADMIN_GETS)
def test_admin_get_with_nul_is_refused(ops, url):
    assert_refused(ops.get(url))


def test_json_callers_get_a_json_error(trader):
    for url in ("/api/search?q=%00", "/api/instruments/AA%00PL/bars"):
        response = trader.get(url)
        assert response.status_code == 400
        assert "NUL" in response.json()["error"]
    response = trader.get("/alerts/?symbol=%00", **JSON)
    assert "NUL" in response.json()["error"]


def test_pages_get_an_html_error(trader):
    response = trader.get("/instruments/AA%00PL/")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "NUL" in response.content.decode()


def test_nul_in_session_cookie_is_treated_as_logged_out(client, user):
    # A 400 would lock the browser out until its cookies were cleared.
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_clean_requests_still_pass(trader):
    assert trader.get("/api/search?q=AAPL").json()["results"][0]["symbol"] == "AAPL"
    assert trader.get("/instruments/AAPL/").status_code == 200
    assert trader.get("/api/instruments/BTC%2FUSD/bars").status_code == 200


# --- forms -----------------------------------------------------------------------
@pytest.fixture
def watchlist(user, instruments) -> Watchlist:
    return watchlist_create(owner=user, name="Mine", symbols=["AAPL", "MSFT"])


def test_watchlist_forms_refuse_nul(trader, watchlist):
    pk = watchlist.pk
    posts = [
        ("/watchlists/create", {"name": "Li\x00st"}),
        (f"/watchlists/{pk}/rename", {"name": "Li\x00st"}),
        (f"/watchlists/{pk}/items/add", {"symbol": "TS\x00LA"}),
        (f"/watchlists/{pk}/items/remove", {"symbol": "AA\x00PL"}),
        (f"/watchlists/{pk}/items/reorder", {"order": ["MSFT", "AA\x00PL"]}),
        ("/watchlists/reorder", {"order": [str(pk), "\x00"]}),
    ]
    for url, data in posts:
        response = trader.post(url, data, **JSON)
        assert response.status_code == 400, (url, response.content[:300])
        assert "NUL" in response.json()["error"].upper(), url
    watchlist.refresh_from_db()
    assert watchlist.name == "Mine"
    assert Watchlist.objects.count() == 1
    assert [i.instrument.symbol for i in watchlist.items.order_by("position")] == [
        "AAPL",
        "MSFT",
    ]


def test_watchlist_form_without_json_shows_the_message(trader, watchlist):
    response = trader.post("/watchlists/create", {"name": "x\x00"}, follow=True)
    assert response.status_code == 200
    assert "Null characters are not allowed" in response.content.decode()
    assert Watchlist.objects.count() == 1


@pytest.mark.parametrize("field", ["symbol", "note", "kind", "level", "period"])
def test_alert_form_shows_an_error_for_nul(trader, field):
    form = RuleFormFactory()
    response = trader.post("/alerts/new", {**form, field: form[field] + NUL})
    assert response.status_code == 400
    assert response.templates[0].name == "dashboard/alerts_form.html"
    assert response.context["form"].errors
    assert not AlertRule.objects.exists()


def test_alert_test_and_seen_endpoints_refuse_nul(trader):
    response = trader.post("/alerts/new", RuleFormFactory(action="test", days="5\x00"))
    assert response.status_code == 200  # as for any bad number of days
    assert response.context["dry_run_form"].errors["days"]
    response = trader.post("/alerts/seen", {"ids": "1,\x00"}, **JSON)
    assert response.status_code == 400
    response = trader.post("/alerts/seen", {"ids": "all", "next": "/\x00"})
    assert response.status_code == 302 and "\x00" not in response["Location"]


def test_login_form_refuses_nul(client, user):
    response = client.post(
        "/login/", {"username": "tra\x00der", "password": "s3cret-pass"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["username"]
    assert "_auth_user_id" not in client.session


# --- admin -------------------------------------------------------------------------
INSTRUMENT = {
    "symbol": "NEWCO",
    "name": "New Co",
    "asset_class": "equity",
    "exchange": "NYSE",
    "currency": "USD",
    "price_increment": "0.01",
    "provider_symbols": "{}",
    "active": "on",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "New\x00Co"),
        ("exchange", "NY\x00SE"),
        ("provider_symbols", '{"alpaca": "NEW\\u0000CO"}'),
        ("provider_symbols", '{"alpaca": "NEW\\ud800CO"}'),
        ("provider_symbols", '{"al\\u0000paca": "NEWCO"}'),
    ],
)
def test_admin_instrument_form_shows_validation_error(ops, field, value):
    response = ops.post(
        "/admin/marketdata/instrument/add/", {**INSTRUMENT, field: value}
    )
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert not Instrument.objects.filter(symbol="NEWCO").exists()


def test_admin_instrument_form_still_saves_clean_input(ops):
    response = ops.post(
        "/admin/marketdata/instrument/add/",
        {**INSTRUMENT, "provider_symbols": '{"alpaca": "NEWCO"}'},
    )
    assert response.status_code == 302
    assert Instrument.objects.get(symbol="NEWCO").provider_symbols == {
        "alpaca": "NEWCO"
    }


def test_admin_rule_note_with_nul_shows_validation_error(ops, staff_user):
    aapl = Instrument.objects.get(symbol="AAPL")
    response = ops.post(
        "/admin/alerts/alertrule/add/",
        {
            "owner": staff_user.pk,
            "instrument": aapl.pk,
            "kind": "price",
            "direction": "above",
            "active": "on",
            "level": "150",
            "hysteresis": "0",
            "cooldown_seconds": "300",
            "note": "bre\x00akout",
        },
    )
    assert response.status_code == 200
    assert "note" in response.context["adminform"].form.errors
    assert not AlertRule.objects.exists()


def test_refused_through_the_asgi_handler_too(user, instruments):
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    client = AsyncClient(raise_request_exception=False)
    client.force_login(user)
    for url in ("/api/search?q=A%00", "/instruments/AA%00PL/"):
        assert_refused(async_to_sync(client.get)(url))
