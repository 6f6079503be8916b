"""Alert pages: rules CRUD by symbol, validation messages, history, unseen
alerts, dry run, and that users only ever see and change their own."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from alerts.models import AlertRule
from alerts.services import alert_rule_create
from tests.factories import AlertEventFactory, RuleFormFactory

pytestmark = pytest.mark.django_db


def test_pages_require_login(client):
    for url in ("/alerts/", "/alerts/new", "/alerts/unseen"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_create_rule_by_symbol_and_list_it(client, user, instruments):
    client.force_login(user)
    page = client.get("/alerts/new?symbol=AAPL")
    assert page.status_code == 200 and 'value="AAPL"' in page.content.decode()
    response = client.post("/alerts/new", RuleFormFactory())
    assert response.status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.owner, rule.instrument.symbol, rule.level) == (
        user,
        "AAPL",
        Decimal("150"),
    )
    assert rule.note == "breakout" and rule.active
    listing = client.get(response["Location"]).content.decode()
    assert "price crosses above 150" in listing and "breakout" in listing


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"symbol": "NOPE"}, "symbol", "Unknown symbol &#x27;NOPE&#x27;"),
        ({"level": ""}, "level", "Enter a level."),
        ({"level": "-5"}, "level", "A price level must be greater than 0."),
        (
            {"kind": "rsi", "level": "150", "timeframe": "5m", "period": "14"},
            "level",
            "between 0 and 100",
        ),
        (
            {"kind": "rsi", "level": "70", "timeframe": "2m", "period": "14"},
            "timeframe",
            "2m is not one of the available choices",
        ),
        (
            {"kind": "rsi", "level": "70", "timeframe": "5m", "period": "1"},
            "period",
            "RSI period must be between 2 and 200",
        ),
        (
            {
                "kind": "ma_cross",
                "timeframe": "1m",
                "fast_period": "50",
                "slow_period": "20",
                "ma_type": "sma",
            },
            "slow_period",
            "slow period must be longer than the fast one",
        ),
        (
            {
                "kind": "volume_spike",
                "direction": "below",
                "level": "3",
                "period": "20",
            },
            "direction",
            "can only cross above",
        ),
        (
            {"kind": "volume_spike", "level": "0.5", "period": "20"},
            "level",
            "between 1 and 1000",
        ),
        ({"kind": "change_pct", "level": "0"}, "level", "non-zero percent"),
        ({"hysteresis": "-1"}, "hysteresis", "cannot be negative"),
        ({"hysteresis": "200"}, "hysteresis", "smaller than the level"),
        ({"cooldown_seconds": "999999"}, "cooldown_seconds", "at most 7 days"),
    ],
)
def test_bad_input_is_shown_back_with_a_clear_message(
    client, user, instruments, changes, field, message
):
    client.force_login(user)
    response = client.post("/alerts/new", RuleFormFactory(**changes))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert field in response.context["form"].errors
    assert not AlertRule.objects.exists()


def test_fields_the_kind_does_not_use_are_cleared(client, user, instruments):
    client.force_login(user)
    data = RuleFormFactory(
        kind="rsi", level="70", timeframe="15m", period="14", fast_period="5"
    )
    assert client.post("/alerts/new", data).status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.timeframe, rule.period, rule.fast_period) == ("15m", 14, None)


def test_edit_toggle_and_delete_keep_history(client, user, instruments):
    rule = alert_rule_create(
        owner=user, instrument=instruments["AAPL"], kind="price", level=150
    )
    event = AlertEventFactory(owner=user, instrument=instruments["AAPL"], rule=rule)
    client.force_login(user)
    assert client.get(f"/alerts/{rule.pk}/edit").status_code == 200
    response = client.post(
        f"/alerts/{rule.pk}/edit", RuleFormFactory(symbol="MSFT", level="420")
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.instrument.symbol, rule.level) == ("MSFT", Decimal("420"))
    client.post(f"/alerts/{rule.pk}/toggle")
    rule.refresh_from_db()
    assert rule.active is False
    assert client.get(f"/alerts/{rule.pk}/delete").status_code == 200
    assert client.post(f"/alerts/{rule.pk}/delete").status_code == 302
    assert not AlertRule.objects.exists()
    event.refresh_from_db()
    assert event.rule is None
    assert "AAPL crossed above 150" in client.get("/alerts/").content.decode()


def test_users_only_see_and_change_their_own(client, user, other_user, instruments):
    theirs = alert_rule_create(
        owner=other_user, instrument=instruments["AAPL"], kind="price", level=99
    )
    their_event = AlertEventFactory(
        owner=other_user, instrument=instruments["AAPL"], message="RIVAL ALERT"
    )
    mine = AlertEventFactory(
        owner=user, instrument=instruments["AAPL"], message="MY ALERT"
    )
    client.force_login(user)
    listing = client.get("/alerts/").content.decode()
    assert "MY ALERT" in listing and "RIVAL ALERT" not in listing
    assert "crosses above 99" not in listing
    for method, url in [
        ("get", f"/alerts/{theirs.pk}/edit"),
        ("post", f"/alerts/{theirs.pk}/edit"),
        ("get", f"/alerts/{theirs.pk}/delete"),
        ("post", f"/alerts/{theirs.pk}/delete"),
        ("post", f"/alerts/{theirs.pk}/toggle"),
        ("get", f"/alerts/{theirs.pk}/test?days=5"),
    ]:
        response = getattr(client, method)(
            url, RuleFormFactory() if method == "post" else None
        )
        assert response.status_code == 404, url
    theirs.refresh_from_db()
    assert theirs.active and theirs.level == Decimal("99")
    unseen = client.get("/alerts/unseen").json()
    assert [a["id"] for a in unseen["alerts"]] == [mine.pk] and unseen["count"] == 1
    # Marking someone else's alert as seen does nothing.
    response = client.post(
        "/alerts/seen", {"ids": f"{their_event.pk}"}, HTTP_ACCEPT="application/json"
    )
    assert response.json() == {"marked": 0}
    their_event.refresh_from_db()
    assert their_event.seen_at is None


def test_unseen_alerts_are_listed_until_marked_seen(client, user, instruments):
    first = AlertEventFactory(
        owner=user, instrument=instruments["AAPL"], message="first"
    )
    second = AlertEventFactory(
        owner=user, instrument=instruments["MSFT"], message="second"
    )
    AlertEventFactory(
        owner=user, instrument=instruments["MSFT"], message="old", seen=True
    )
    client.force_login(user)
    data = client.get("/alerts/unseen").json()
    assert data["count"] == 2
    assert {a["message"] for a in data["alerts"]} == {"first", "second"}
    assert all(a["seen"] is False and a["url"] == "/alerts/" for a in data["alerts"])
    page = client.get("/alerts/").content.decode()
    assert "2 unseen" in page
    assert client.post(
        "/alerts/seen", {"ids": str(first.pk)}, HTTP_ACCEPT="application/json"
    ).json() == {"marked": 1}
    assert client.get("/alerts/unseen").json()["count"] == 1
    assert client.post("/alerts/seen", {"ids": "all"}).status_code == 302
    assert client.get("/alerts/unseen").json()["count"] == 0
    second.refresh_from_db()
    assert second.seen_at is not None
    response = client.post(
        "/alerts/seen", {"ids": "1,x"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400


def test_history_filters(client, user, instruments):
    AlertEventFactory(owner=user, instrument=instruments["AAPL"], message="apple")
    AlertEventFactory(
        owner=user, instrument=instruments["MSFT"], message="microsoft", seen=True
    )
    client.force_login(user)
    page = client.get("/alerts/", {"symbol": "msft"}).content.decode()
    assert "microsoft" in page and "apple" not in page
    page = client.get("/alerts/", {"unseen": "on"}).content.decode()
    assert "apple" in page and "microsoft" not in page
    page = client.get("/alerts/", {"kind": "rsi"}).content.decode()
    assert "apple" not in page and "No alerts match" in page


def test_test_against_history_from_the_form_does_not_save(client, user, instruments):
    client.force_login(user)
    response = client.post("/alerts/new", RuleFormFactory(action="test", days="3"))
    assert response.status_code == 200
    assert "No stored 1-minute bars for AAPL" in response.content.decode()
    assert not AlertRule.objects.exists()
    response = client.post("/alerts/new", RuleFormFactory(action="test", days="99"))
    assert response.status_code == 200
    assert "less than or equal to 30" in response.content.decode()


def test_dry_run_page_lists_when_the_rule_would_have_fired(client, user, instruments):
    from tests.alerts.test_backtest import store_bars

    instrument = instruments["AAPL"]
    rule = alert_rule_create(
        owner=user,
        instrument=instrument,
        kind="price",
        direction="above",
        level=Decimal("100.5"),
        cooldown_seconds=0,
    )
    now = timezone.now().replace(second=0, microsecond=0)
    store_bars(instrument, 3000, end=now)
    client.force_login(user)
    response = client.get(f"/alerts/{rule.pk}/test", {"days": "1"})
    assert response.status_code == 200
    result = response.context["dry_run"]
    assert result.bars >= 1439 and result.fired
    html = response.content.decode()
    assert f"would have fired <strong>{len(result.fired)}</strong>" in html
    assert html.count("AAPL crossed above 100.5") == len(result.fired)
    assert all(f.price >= Decimal("100.5") for f in result.fired)
    assert client.get(f"/alerts/{rule.pk}/test", {"days": "0"}).status_code == 400


def test_instrument_panel_lists_only_the_users_rules_for_that_instrument(
    rf, user, other_user, instruments
):
    from django.template import Context, Template

    alert_rule_create(
        owner=user, instrument=instruments["AAPL"], kind="price", level=150
    )
    alert_rule_create(
        owner=user, instrument=instruments["MSFT"], kind="price", level=400
    )
    alert_rule_create(
        owner=other_user, instrument=instruments["AAPL"], kind="price", level=99
    )
    request = rf.get("/instruments/AAPL/")
    request.user = user
    html = Template("{% load alerts_tags %}{% instrument_alerts instrument %}").render(
        Context({"request": request, "instrument": instruments["AAPL"]})
    )
    assert "price crosses above 150" in html
    assert "crosses above 400" not in html and "crosses above 99" not in html
    assert "/alerts/new?symbol=AAPL" in html


def test_next_parameter_cannot_leave_the_site(client, user, instruments):
    rule = alert_rule_create(
        owner=user, instrument=instruments["AAPL"], kind="price", level=1
    )
    client.force_login(user)
    response = client.post(
        f"/alerts/{rule.pk}/toggle", {"next": "https://evil.example/"}
    )
    assert response["Location"] == "/alerts/"
    response = client.post(
        "/alerts/seen", {"ids": "all", "next": "/alerts/?symbol=AAPL"}
    )
    assert response["Location"] == "/alerts/?symbol=AAPL"
