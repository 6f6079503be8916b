"""The whole alert path in a real browser: a rule created on the alerts page
reaches the running stream worker, fires on simulator trades, is stored, shows
as a toast on the owner's dashboard, and is listed unseen until marked seen.

Uses the e2e stack (simulator → start_streams → Redis → Daphne → Chromium)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.conftest import (  # noqa: F401  (fixtures)
    browser_context_args,
    browser_type_launch_args,
    database_access,
    login,
    stack,
)

pytestmark = pytest.mark.e2e

LIVE_MS = 45_000


@pytest.fixture(autouse=True)
def _flush_redis():
    """The live stack owns Redis while these tests run: no flushing under it."""
    yield


def last_price(symbol: str) -> Decimal:
    from streaming.snapshots import snapshots_get

    return Decimal(snapshots_get(symbols=[symbol])[symbol]["last"])


def test_rule_from_the_page_fires_on_live_trades(page, login, stack, django_db_blocker):  # noqa: F811
    from alerts.models import AlertEvent, AlertRule

    login(page)
    with database_access(django_db_blocker):
        AlertRule.objects.filter(owner__username="e2e-trader").delete()
        AlertEvent.objects.filter(owner__username="e2e-trader").delete()
        price = last_price("BTC/USD")

    # Two paused rules from the form; armed later just around the last trade.
    for direction, level in (("above", price * 2), ("below", price / 2)):
        page.goto(stack.url + "/alerts/new?symbol=BTC/USD")
        expect(page.locator("#id_symbol")).to_have_value("BTC/USD")
        page.locator("#id_kind").select_option("price")
        page.locator("#id_direction").select_option(direction)
        page.locator("#id_level").fill(str(level))
        page.get_by_label("Cooldown (seconds)").fill("3600")
        page.get_by_label("Note").fill(f"e2e {direction}")
        page.get_by_label("Active").uncheck()
        page.get_by_role("button", name="Create alert").click()
        expect(page.locator(".alert-rules")).to_contain_text(
            f"price crosses {direction}"
        )

    # The RSI fields are hidden for a price rule and shown for RSI.
    page.goto(stack.url + "/alerts/new")
    expect(page.locator("#id_fast_period")).to_be_hidden()
    page.locator("#id_kind").select_option("rsi")
    expect(page.locator("#id_timeframe")).to_be_visible()

    page.goto(stack.url + "/")
    expect(page.locator("#conn-badge")).to_have_text("connected", timeout=LIVE_MS)
    # Activate them just above and just below the last trade (as an admin
    # edit would): the running worker picks the change up and the next move
    # either way crosses one of them. If the price ran away before the worker
    # loaded them, arm them again around the new price.
    from alerts.services import alert_rule_set_active, alert_rule_update

    toast = page.locator(".toast-alert").filter(has_text="BTC/USD crossed")
    deadline = time.monotonic() + LIVE_MS / 1000 * 2
    while True:
        with database_access(django_db_blocker):
            price = last_price("BTC/USD")
            for rule in AlertRule.objects.filter(owner__username="e2e-trader"):
                step = (
                    Decimal("0.01") if rule.direction == "above" else Decimal("-0.01")
                )
                alert_rule_update(rule=rule, level=price + step, active=True)
        try:
            expect(toast.first).to_be_visible(timeout=10_000)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                with database_access(django_db_blocker):
                    fired = AlertEvent.objects.filter(
                        owner__username="e2e-trader"
                    ).count()
                raise AssertionError(
                    f"no alert toast; {fired} alert(s) stored; worker log:\n"
                    + stack.log("streams")
                ) from None

    with database_access(django_db_blocker):
        # Pause both: the other one may cross too while the page is marked seen.
        for rule in AlertRule.objects.filter(owner__username="e2e-trader"):
            alert_rule_set_active(rule=rule, active=False)
        events = list(
            AlertEvent.objects.filter(owner__username="e2e-trader").select_related(
                "instrument"
            )
        )
    assert events and all(e.instrument.symbol == "BTC/USD" for e in events)
    assert all(e.seen_at is None for e in events)

    page.goto(stack.url + "/alerts/")
    expect(page.locator(".alert-history tr.unseen").first).to_contain_text(
        "BTC/USD crossed"
    )
    marked_at = timezone.now()
    page.get_by_role("button", name="Mark all as seen").click()
    expect(page.locator(".alert-history tr.unseen")).to_have_count(0)
    with database_access(django_db_blocker):
        # Every alert recorded before the click is seen (a fire already on its
        # way when the rules were paused may be recorded after it).
        assert not AlertEvent.objects.filter(
            owner__username="e2e-trader",
            seen_at__isnull=True,
            created_at__lt=marked_at,
        ).exists()

    # Test against history: the stack loaded two days of BTC/USD minutes.
    page.get_by_role("link", name="Test against history").first.click()
    expect(page.locator("#dry-run")).to_contain_text("bars from")

    with database_access(django_db_blocker):
        AlertRule.objects.filter(owner__username="e2e-trader").delete()
