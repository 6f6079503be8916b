"""Anomalies in the browser: markers on the instrument chart (the
"anomalies" layer, saved like the indicators), the list of those in view,
and a live toast when the stream worker publishes one."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core.groups import symbol_group
from marketdata.anomalies import Anomaly
from tests.e2e.conftest import database_access
from tests.e2e.pages import LIVE_SECONDS, group_send, ready

pytestmark = pytest.mark.e2e
COUNT = "Number(document.getElementById('chart').dataset.anomalies || 0)"


def test_chart_marks_anomalies_and_toasts_live_ones(
    page, login, stack, django_db_blocker, docs_dir
):
    from marketdata.models import Instrument
    from marketdata.services import anomalies_record

    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=40)
    with database_access(django_db_blocker):
        btc = Instrument.objects.get(symbol="BTC/USD")
        anomalies_record(
            anomalies=[
                (btc.id, Anomaly("BTC/USD", "return_spike", minute, 8.2, 0.012, 0.0,
                                 "up", "+1.20% in one minute is 8.2 robust deviations.")),
                (btc.id, Anomaly("BTC/USD", "volume_surge", minute + timedelta(
                    minutes=10), 9.5, 95.0, 10.0, "", "95 volume is 9.5x usual.")),
            ]
        )  # fmt: skip
    login(page)
    page.goto(stack.url + "/instruments/BTC/USD/")
    ready(page)
    page.wait_for_function(f"{COUNT} === 2", timeout=LIVE_SECONDS)
    panel = page.locator("#chart-anomalies")
    panel.locator("summary").click()
    expect(panel.locator("li")).to_have_count(2)
    expect(panel.locator('li[data-kind="return_spike"]')).to_contain_text(
        "8.2 robust deviations"
    )
    page.screenshot(path=str(docs_dir / "chart-anomalies.png"))
    # On the 1-hour chart both fall on bars too.
    page.get_by_role("button", name="1H", exact=True).click()
    expect(page.locator("#chart")).to_have_attribute("data-timeframe", "1h")
    page.wait_for_function(f"{COUNT} === 2", timeout=LIVE_SECONDS)
    # A live anomaly: a toast, and one more marker.
    now = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    group_send(
        symbol_group("BTC/USD"),
        {
            "type": "market.anomaly",
            "anomaly": Anomaly(
                "BTC/USD", "trade_rate_surge", now, 7.0, 700.0, 100.0, "",
                "700 trades in one minute is 7.0x the median.",
            ).as_document(),
        },
    )  # fmt: skip
    expect(page.locator(".toast").filter(has_text="700 trades")).to_be_visible(
        timeout=LIVE_SECONDS
    )
    page.wait_for_function(f"{COUNT} === 3", timeout=LIVE_SECONDS)
    # Turned off: no markers, and it stays off after a reload (saved).
    box = page.get_by_label("Anomalies", exact=True)
    box.uncheck()
    page.wait_for_function(f"{COUNT} === 0")
    page.wait_for_function(
        "document.getElementById('indicators').dataset.saved === 'true'"
    )
    page.reload()
    ready(page)
    expect(page.get_by_label("Anomalies", exact=True)).not_to_be_checked()
    page.wait_for_function(
        "Number(document.getElementById('chart').dataset.bars) > 0",
        timeout=LIVE_SECONDS,
    )
    assert page.evaluate(COUNT) == 0
    box = page.get_by_label("Anomalies", exact=True)
    box.check()
    page.wait_for_function(f"{COUNT} >= 2", timeout=LIVE_SECONDS)
    expect(page.get_by_role("link", name=re.compile("^Anomalies"))).to_be_visible()
