"""A multi-condition alert rule built in a real browser: the kind chosen,
condition rows over two instruments filled, the rule listed with both
conditions in its description; a malformed one (a condition without its
level) comes back with the error naming that condition and nothing saved.
TAPELINE_SCREENSHOTS=1 writes docs/alert-multi.png (the filled form)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import database_access

pytestmark = pytest.mark.e2e

STACK_HISTORY = False  # rules are only built here, never fired


def condition(page, number: int):
    return page.locator(f'[data-condition-row="{number}"]')


def fill_condition(page, number: int, *, kind, symbol, direction, level=None):
    row = condition(page, number)
    row.get_by_label("Kind").select_option(kind)
    row.get_by_label("Symbol").fill(symbol)
    row.get_by_label("Direction").select_option(direction)
    if level is not None:
        row.get_by_label("Level", exact=True).fill(level)


def test_multi_condition_rule_built_in_the_form(
    page, login, stack, docs_dir, django_db_blocker
):
    from alerts.models import AlertRule

    with database_access(django_db_blocker):
        AlertRule.objects.filter(owner__username="e2e-trader").delete()
    page.set_viewport_size({"width": 1280, "height": 1000})
    login(page)
    page.goto(stack.url + "/alerts/new")
    conditions = page.locator("[data-conditions]")
    expect(conditions).to_be_hidden()
    page.locator("[data-field=kind] select").select_option(
        label="Several conditions (AND / OR)"
    )
    expect(conditions).to_be_visible()
    # The single-instrument inputs step aside; two rows are offered.
    expect(page.locator("[data-field=symbol]")).to_be_hidden()
    # Each condition has its own direction: the rule-wide one is not asked.
    expect(page.locator("[data-field=direction]")).to_be_hidden()
    expect(condition(page, 1)).to_be_visible()
    expect(condition(page, 2)).to_be_visible()
    expect(condition(page, 3)).to_be_hidden()
    page.get_by_label("Combine conditions").select_option("and")
    fill_condition(page, 1, kind="price", symbol="BTC/USD", direction="above",
                   level="150000")  # fmt: skip
    # A row shows only its kind's inputs.
    expect(condition(page, 1).get_by_label("Period", exact=True)).to_be_hidden()
    fill_condition(page, 2, kind="change_pct", symbol="ETH/USD", direction="above",
                   level="3")  # fmt: skip
    page.get_by_role("button", name="Add condition").click()
    expect(condition(page, 3)).to_be_visible()
    fill_condition(page, 3, kind="rsi", symbol="ETH/USD", direction="below",
                   level="30")  # fmt: skip
    rsi = condition(page, 3)
    expect(rsi.get_by_label("Period", exact=True)).to_be_visible()
    rsi.get_by_label("Timeframe").select_option("5m")
    rsi.get_by_label("Period", exact=True).fill("14")
    page.get_by_label("Note").fill("crypto breakout")
    page.locator("[data-conditions]").scroll_into_view_if_needed()
    page.screenshot(path=str(docs_dir / "alert-multi.png"), full_page=True)
    page.get_by_role("button", name="Create alert").click()

    rules = page.locator(".alert-rules tbody tr")
    expect(rules).to_have_count(1)
    expect(rules.first).to_contain_text("BTC/USD, ETH/USD")
    expect(rules.first).to_contain_text(
        "BTC/USD price crosses above 150000 AND ETH/USD change vs previous close "
        "crosses above 3% AND ETH/USD RSI(14, 5m) crosses below 30"
    )
    expect(rules.first).to_contain_text("crypto breakout")

    # Malformed: condition 2 has no level. The error names it, the rows keep
    # what was typed, and no rule is added.
    page.goto(stack.url + "/alerts/new")
    page.locator("[data-field=kind] select").select_option("multi")
    page.get_by_label("Combine conditions").select_option("or")
    fill_condition(page, 1, kind="price", symbol="BTC/USD", direction="below",
                   level="20000")  # fmt: skip
    fill_condition(page, 2, kind="change_pct", symbol="ETH/USD", direction="above")
    page.get_by_role("button", name="Create alert").click()
    error = page.locator("[data-conditions] .error")
    expect(error).to_have_text("Condition 2: Enter a level.")
    expect(error).to_be_visible()
    expect(condition(page, 1).get_by_label("Symbol")).to_have_value("BTC/USD")
    expect(condition(page, 2).get_by_label("Kind")).to_have_value("change_pct")
    expect(condition(page, 2).get_by_label("Symbol")).to_have_value("ETH/USD")
    page.goto(stack.url + "/alerts/")
    expect(page.locator(".alert-rules tbody tr")).to_have_count(1)
    with database_access(django_db_blocker):
        assert AlertRule.objects.filter(owner__username="e2e-trader").count() == 1


def test_the_demo_rules_fit_a_laptop_screen(page, login, stack, django_db_blocker):
    """The rules table of `make demo`'s rules, each fired, at 1280 px: every
    column, the actions included, shows without scrolling sideways."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from alerts.demo import demo_alert_rules_seed
    from alerts.models import AlertRule

    with database_access(django_db_blocker):
        trader = get_user_model().objects.get(username="e2e-trader")
        AlertRule.objects.filter(owner=trader).delete()
        rules = demo_alert_rules_seed(user=trader)
        AlertRule.objects.filter(owner=trader).update(
            last_fired_at=timezone.now(), notify_email=True
        )
    try:
        page.set_viewport_size({"width": 1280, "height": 800})
        login(page)
        page.goto(stack.url + "/alerts/")
        table = page.locator("table.alert-rules")
        expect(table.locator("tbody tr")).to_have_count(len(rules))
        wrap = table.locator("xpath=..")
        sideways = wrap.evaluate("w => w.scrollWidth - w.clientWidth")
        assert sideways <= 0, f"the rules table scrolls {sideways} px sideways"
        for link in table.get_by_role("link", name="Test against history").all():
            box = link.bounding_box()
            assert box is not None and box["x"] + box["width"] <= 1280
    finally:
        with database_access(django_db_blocker):
            AlertRule.objects.filter(owner__username="e2e-trader").delete()
