"""Chart patterns in a real browser: hourly bars with a head and shoulders
and a double bottom planted in them, the Patterns toggle turned on, the
lines and markers drawn and each explanation listed under the chart; the
toggle is remembered. TAPELINE_SCREENSHOTS=1 writes docs/chart-patterns.png."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from marketdata.patterns import detect
from tests.e2e.conftest import database_access
from tests.marketdata.planted import PLANTED, bars_of, mirror

pytestmark = pytest.mark.e2e

STACK_HISTORY = False  # the planted bars are all this module needs
SYMBOL = "GOOGL"  # in no watchlist: nothing streams into its hours
LIVE_SECONDS = 30_000


def planted_path():
    """A head and shoulders, then a double bottom 8 lower."""
    hs = PLANTED["head_and_shoulders"][0]
    bottom = [(i + hs[-1][0], p - 8) for i, p in mirror(PLANTED["double_top"][0])]
    return [*hs, *bottom[1:]]


@pytest.fixture
def planted(stack, django_db_blocker):
    from marketdata.models import Instrument
    from marketdata.services import bars_upsert

    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    path = planted_path()
    bars = bars_of(
        path, start=hour - timedelta(hours=path[-1][0] + 3), step=timedelta(hours=1)
    )
    with database_access(django_db_blocker):
        instrument = Instrument.objects.get(symbol=SYMBOL)
        rows = [
            (instrument.id, "1h", b["ts"],
             *(Decimal(str(round(b[k], 6))) for k in ("open", "high", "low", "close", "volume")),
             None, 10)
            for b in bars
        ]  # fmt: skip
        bars_upsert(rows=rows, provider="test")
    return bars


def test_patterns_drawn_and_explained_on_the_chart(
    page, login, stack, planted, docs_dir
):
    expected = detect(planted)
    kinds = {d.kind for d in expected}
    assert {"head_and_shoulders", "double_bottom"} <= kinds
    login(page)
    page.goto(f"{stack.url}/instruments/{SYMBOL}/?tf=1h")
    page.wait_for_selector("body[data-ready]", state="attached")
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-timeframe", "1h", timeout=LIVE_SECONDS)
    series_before = page.evaluate("window.tapelineChart.panes()[0].getSeries().length")
    toggle = page.get_by_label("Patterns", exact=True)
    expect(toggle).not_to_be_checked()
    expect(page.locator("#patterns")).to_be_hidden()

    toggle.check()
    listed = page.locator("#pattern-list li")
    expect(listed).to_have_count(len(expected), timeout=LIVE_SECONDS)
    expect(chart).to_have_attribute("data-patterns", str(len(expected)))
    hs = listed.filter(has_text="Head and shoulders")
    expect(hs).to_have_count(1)
    expect(hs).to_contain_text(
        "Head and shoulders: head at 112.25 between shoulders at 106.25 and 106.25"
    )
    head = next(d for d in expected if d.kind == "head_and_shoulders")
    assert hs.get_attribute("data-t") == str(int(head.confirmed_at.timestamp()))
    assert hs.get_attribute("title") == head.explain
    bottom = listed.filter(has_text="Double bottom")
    expect(bottom).to_contain_text("then a close at")
    # Each detection's lines are on the price pane now.
    drawn = page.evaluate("window.tapelineChart.panes()[0].getSeries().length")
    assert drawn > series_before + len(expected)
    # Clicking an entry brings its bar into view; hovering that bar shows
    # its explanation.
    hs.click()
    at = head.confirmed_at.timestamp()
    tip = page.locator(".pattern-tip")
    chart.scroll_into_view_if_needed()
    for _ in range(5):
        # Where the bar is now (the scroll may still be moving, a live bar may
        # close): measured again before each move of the pointer.
        x = page.wait_for_function(
            """(t) => {
              const x = window.tapelineChart.timeScale().timeToCoordinate(t);
              const width = document.getElementById("chart").clientWidth;
              return x !== null && x > 0 && x < width - 80 ? x : null;
            }""",
            arg=at,
        ).json_value()
        box = chart.bounding_box()
        page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)
        try:
            expect(tip).to_contain_text(
                "Head and shoulders: head at 112.25", timeout=2000
            )
            break
        except AssertionError:
            page.mouse.move(box["x"] + 5, box["y"] + 5)  # off the bar, then again
    expect(tip).to_contain_text("Head and shoulders: head at 112.25")
    page.evaluate("window.tapelineChart.timeScale().fitContent()")
    page.wait_for_timeout(500)
    page.screenshot(path=str(docs_dir / "chart-patterns.png"))

    # Remembered: saved with the indicators, drawn again after a reload.
    expect(page.locator("#patterns-toggle")).to_have_attribute(
        "data-saved", "true", timeout=LIVE_SECONDS
    )
    page.reload()
    expect(page.get_by_label("Patterns", exact=True)).to_be_checked()
    expect(page.locator("#pattern-list li")).to_have_count(
        len(expected), timeout=LIVE_SECONDS
    )
    page.get_by_label("Patterns", exact=True).uncheck()
    expect(page.locator("#patterns")).to_be_hidden()
    assert (
        page.evaluate("window.tapelineChart.panes()[0].getSeries().length")
        == series_before
    )


def test_patterns_and_anomalies_drawn_together(
    page, login, stack, planted, docs_dir, django_db_blocker
):
    """Both analytics layers on one chart: the planted patterns' lines and
    markers, and anomaly markers a few bars after the head and shoulders'
    breakdown and the double bottom's breakout (clear of the patterns' own
    markers). TAPELINE_SCREENSHOTS=1 writes
    docs/chart-analytics.png."""
    from marketdata.anomalies import Anomaly
    from marketdata.models import Instrument
    from marketdata.services import anomalies_record

    expected = detect(planted)
    head = next(d for d in expected if d.kind == "head_and_shoulders")
    bottom = next(d for d in expected if d.kind == "double_bottom")
    spike_at = head.confirmed_at + timedelta(hours=4, minutes=20)
    surge_at = bottom.confirmed_at + timedelta(hours=3, minutes=5)
    with database_access(django_db_blocker):
        instrument = Instrument.objects.get(symbol=SYMBOL)
        anomalies_record(
            anomalies=[
                (instrument.id, Anomaly(SYMBOL, "return_spike", spike_at, 7.4, -0.021,
                                        0.0, "down", "-2.10% in one minute is 7.4 "
                                        "robust deviations.")),
                (instrument.id, Anomaly(SYMBOL, "volume_surge", surge_at, 6.3, 63.0,
                                        10.0, "", "63 volume is 6.3x usual.")),
            ]
        )  # fmt: skip
    page.set_viewport_size({"width": 1280, "height": 1000})
    login(page)
    page.goto(f"{stack.url}/instruments/{SYMBOL}/?tf=1h")
    page.wait_for_selector("body[data-ready]", state="attached")
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-timeframe", "1h", timeout=LIVE_SECONDS)
    page.get_by_label("Patterns", exact=True).check()
    expect(page.get_by_label("Anomalies", exact=True)).to_be_checked()
    expect(page.locator("#pattern-list li")).to_have_count(
        len(expected), timeout=LIVE_SECONDS
    )
    expect(chart).to_have_attribute("data-patterns", str(len(expected)))
    expect(chart).to_have_attribute("data-anomalies", "2", timeout=LIVE_SECONDS)
    anomalies = page.locator("#chart-anomalies")
    anomalies.locator("summary").click()
    expect(anomalies.locator("li")).to_have_count(2)
    expect(anomalies.locator('li[data-kind="return_spike"]')).to_contain_text(
        "7.4 robust deviations"
    )
    expect(anomalies.locator('li[data-kind="volume_surge"]')).to_contain_text(
        "6.3x usual"
    )
    page.evaluate("window.tapelineChart.timeScale().fitContent()")
    page.wait_for_timeout(500)
    page.screenshot(path=str(docs_dir / "chart-analytics.png"), full_page=True)
