"""Alert delivery end to end in a real browser: a webhook channel added on
the channels page (its secret shown once), chosen under "Deliver to" in a
rule, the rule fires on live simulator trades in `start_streams`, a
`rundramatiq` worker posts it to a local receiver that first answers 500,
retries, and the alert history lists the delivery record (sent, 2 attempts,
the 500 gone from it). TAPELINE_SCREENSHOTS=1 writes docs/delivery.png."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.alerts.receivers import Answer, Receiver, verify_signature, wait_for
from tests.e2e.conftest import database_access

pytestmark = pytest.mark.e2e

STACK_HISTORY = False
STACK_ENV = {
    "ALERT_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on loopback
    "ALERT_DELIVERY_BACKOFF_SECONDS": "1",
    "HISTORY_RECLAIM_EVERY": "0",
}
LIVE_MS = 45_000


def test_alert_delivered_to_a_webhook_and_listed_in_history(
    page, login, stack, docs_dir, django_db_blocker, settings
):
    from alerts.models import AlertEvent, AlertRule, DeliveryChannel
    from alerts.services import alert_rule_update
    from streaming.snapshots import snapshots_get

    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    page.set_viewport_size({"width": 1280, "height": 900})
    with database_access(django_db_blocker):
        AlertRule.objects.filter(owner__username="e2e-trader").delete()
        AlertEvent.objects.filter(owner__username="e2e-trader").delete()
        DeliveryChannel.objects.filter(owner__username="e2e-trader").delete()
    stack.spawn(
        "worker", "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"
    )
    receiver = Receiver([Answer(500, b"receiver warming up")])
    with receiver:
        login(page)
        page.goto(stack.url + "/alerts/channels/")
        page.get_by_label("Name").fill("Algo desk")
        page.get_by_label("Kind").select_option("webhook")
        page.get_by_label("Webhook URL").fill(receiver.url + "/tapeline")
        page.get_by_role("button", name="Add channel").click()
        secret = page.locator("[data-created-secret] [data-secret]").inner_text()
        assert len(secret) >= 32
        page.goto(stack.url + "/alerts/channels/")
        expect(page.locator(".alert-channels")).to_contain_text("Algo desk")
        expect(page.locator("body")).not_to_contain_text(secret)

        page.goto(stack.url + "/alerts/new?symbol=BTC/USD")
        page.locator("#id_kind").select_option("price")
        page.locator("#id_level").fill("1")
        page.get_by_label("Cooldown (seconds)").fill("3600")
        page.get_by_label("Note").fill("to the algo desk")
        page.get_by_label("Active").uncheck()
        page.get_by_label("Deliver to").select_option(
            label="Algo desk (Webhook (signed JSON))"
        )
        page.get_by_role("button", name="Create alert").click()
        expect(page.locator(".alert-rules")).to_contain_text("price crosses above")

        # Armed just above the last trade until a live trade crosses it.
        def fired() -> bool:
            with database_access(django_db_blocker):
                return AlertEvent.objects.filter(owner__username="e2e-trader").exists()

        deadline = time.monotonic() + LIVE_MS / 1000 * 2
        while not fired():
            with database_access(django_db_blocker):
                last = Decimal(snapshots_get(symbols=["BTC/USD"])["BTC/USD"]["last"])
                for rule in AlertRule.objects.filter(owner__username="e2e-trader"):
                    alert_rule_update(
                        rule=rule, level=last + Decimal("0.01"), active=True
                    )
            try:
                wait_for(fired, timeout=10, what="the alert")
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        "no alert; stream log:\n" + stack.log("streams")
                    ) from None
        wait_for(lambda: receiver.requests, timeout=60, what="the first attempt")
        wait_for(lambda: len(receiver.requests) >= 2, timeout=30, what="the retry")

    first, second = receiver.requests[:2]
    assert all(verify_signature(r, secret) for r in (first, second))
    assert first.headers["X-Tapeline-Delivery"] == second.headers["X-Tapeline-Delivery"]
    body = second.json()
    assert body["type"] == "alert" and body["alert"]["symbol"] == "BTC/USD"
    assert body["alert"]["note"] == "to the algo desk"

    page.goto(stack.url + "/alerts/")
    record = page.locator(f'[data-delivery="{body["delivery"]}"]')
    expect(record).to_contain_text("Algo desk", timeout=10_000)
    expect(record).to_contain_text("sent")
    expect(record).to_contain_text("2 attempts")
    expect(record).to_contain_text("delivered")
    page.locator(".alert-history tbody tr").first.scroll_into_view_if_needed()
    page.screenshot(path=str(docs_dir / "delivery.png"), full_page=True)
    stack.stop("worker")
