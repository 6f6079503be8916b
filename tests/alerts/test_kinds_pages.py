"""The alert form builds multi-condition and portfolio rules, names the bad
condition, and the admin shows them; a rule edit notifies engines once."""

from __future__ import annotations

import pytest

from alerts.models import AlertRule
from alerts.selectors import version_key
from alerts.services import alert_rule_create, alert_rule_delete, alert_rule_update
from core.redis import redis_client

pytestmark = pytest.mark.django_db

BASE = {
    "symbol": "",
    "kind": "multi",
    "direction": "above",
    "combine": "and",
    "cooldown_seconds": "300",
    "active": "on",
    "action": "save",
}


def rows(*conditions) -> dict:
    data = {}
    for number, condition in enumerate(conditions, start=1):
        data.update({f"c{number}_{k}": v for k, v in condition.items()})
    return data


def test_form_builds_a_multi_condition_rule(client, user, instruments):
    client.force_login(user)
    page = client.get("/alerts/new").content.decode()
    assert 'data-condition-row="5"' in page and "Add condition" in page
    data = {
        **BASE,
        **rows(
            {"kind": "price", "symbol": "aapl", "direction": "above", "level": "150"},
            {},  # an empty row in between is ignored
            {"kind": "anomaly", "symbol": "MSFT", "anomaly": "volume_surge"},
            {
                "kind": "rsi",
                "symbol": "MSFT",
                "direction": "below",
                "level": "30",
                "timeframe": "5m",
                "period": "14",
            },
        ),
    }
    response = client.post("/alerts/new", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = AlertRule.objects.get(owner=user)
    assert rule.instrument is None and rule.combine == "and"
    assert [c["symbol"] for c in rule.conditions] == ["AAPL", "MSFT", "MSFT"]
    assert rule.describe() == (
        "AAPL price crosses above 150 AND MSFT volume surge seen AND "
        "MSFT RSI(14, 5m) crosses below 30"
    )
    listing = client.get("/alerts/").content.decode()
    assert "AAPL, MSFT" in listing
    # The edit form shows the stored conditions back.
    edit = client.get(f"/alerts/{rule.pk}/edit").content.decode()
    assert 'name="c4_kind"' in edit and 'value="MSFT"' in edit


def test_form_names_the_bad_condition(client, user, instruments):
    client.force_login(user)
    data = {
        **BASE,
        **rows(
            {"kind": "price", "symbol": "AAPL", "direction": "above", "level": "150"},
            {"kind": "price", "symbol": "AAPL", "direction": "above", "level": "1"},
            {
                "kind": "ma_cross",
                "symbol": "ZZZZ",
                "direction": "above",
                "timeframe": "5m",
                "fast_period": "20",
                "slow_period": "10",
                "ma_type": "sma",
            },
        ),
    }
    response = client.post("/alerts/new", data)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Condition 3: unknown symbol &#x27;ZZZZ&#x27;." in page
    assert "Condition 3: The slow period must be longer than the fast one." in page
    assert not AlertRule.objects.exists()


def test_form_portfolio_rule_needs_no_symbol(client, user, instruments):
    client.force_login(user)
    data = {
        **BASE,
        "kind": "portfolio_value",
        "measure": "day_pl",
        "level": "-500",
        "direction": "below",
        "hysteresis": "0",
    }
    assert client.post("/alerts/new", data).status_code == 302
    rule = AlertRule.objects.get(owner=user)
    assert rule.describe() == "portfolio day P/L crosses below -500"
    # A kind that needs an instrument says so.
    response = client.post("/alerts/new", {**data, "kind": "price", "level": "5"})
    assert "Enter the instrument&#x27;s symbol." in response.content.decode()


def test_admin_shows_multi_condition_rules(client, staff_user, user, instruments):
    alert_rule_create(
        owner=user,
        instrument=None,
        kind="multi",
        combine="or",
        conditions=[
            {"kind": "price", "symbol": "AAPL", "direction": "above", "level": "1"},
            {"kind": "anomaly", "symbol": "MSFT", "anomaly": "volume_surge"},
        ],
    )
    client.force_login(staff_user)
    page = client.get("/admin/alerts/alertrule/").content.decode()
    assert "AAPL price crosses above 1 OR MSFT volume surge seen" in page
    rule = AlertRule.objects.get()
    change = client.get(f"/admin/alerts/alertrule/{rule.pk}/change/")
    assert change.status_code == 200 and "volume_surge" in change.content.decode()


def test_each_rule_change_bumps_the_counter_once(
    user, instruments, django_capture_on_commit_callbacks
):
    client = redis_client()

    def version() -> int:
        return int(client.get(version_key()) or 0)

    before = version()
    with django_capture_on_commit_callbacks(execute=True):
        rule = alert_rule_create(
            owner=user, instrument=instruments["AAPL"], kind="price", level=150
        )
    assert version() == before + 1
    with django_capture_on_commit_callbacks(execute=True):
        alert_rule_update(rule=rule, level=151)
    assert version() == before + 2
    with django_capture_on_commit_callbacks(execute=True):
        alert_rule_delete(rule=rule)
    assert version() == before + 3


def test_dry_run_page_of_a_portfolio_rule(client, user, instruments):
    rule = alert_rule_create(
        owner=user,
        instrument=None,
        kind="portfolio_value",
        measure="value",
        level=1000,
    )
    client.force_login(user)
    page = client.get(f"/alerts/{rule.pk}/test", {"days": "2"})
    assert page.status_code == 200
    assert "Portfolio values use the positions as held today." in (
        page.content.decode()
    )
