"""Candlestick-pattern markers on the instrument chart, in a real browser
against the real stack: a hammer planted in stored daily bars is marked once
the "Candlestick patterns" toggle is on, and the toggle is remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import database_access
from tests.marketdata.test_candles import planted_hammer

pytestmark = pytest.mark.e2e
STACK_HISTORY = False  # the test plants its own bars
WAIT_MS = 30_000


@pytest.fixture
def hammer_day(stack, django_db_blocker) -> int:
    """40 daily SOL/USD bars ending ten days ago, the last one a hammer;
    returns its time (epoch seconds)."""
    from marketdata.models import Instrument
    from marketdata.services import BarRow, bars_upsert

    o, h, lo, c = planted_hammer(40)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=10 + len(c) - 1)
    with database_access(django_db_blocker):
        instrument = Instrument.objects.get(symbol="SOL/USD")
        bars_upsert(
            rows=[
                BarRow(
                    instrument_id=instrument.pk,
                    timeframe="1d",
                    ts=first + timedelta(days=i),
                    open=Decimal(f"{o[i] + 50:.4f}"),
                    high=Decimal(f"{h[i] + 50:.4f}"),
                    low=Decimal(f"{lo[i] + 50:.4f}"),
                    close=Decimal(f"{c[i] + 50:.4f}"),
                    volume=Decimal(1000),
                )
                for i in range(len(c))
            ],
            provider="test",
        )
    return int((first + timedelta(days=len(c) - 1)).timestamp())


def hammer_marked(page, day: int) -> None:
    page.wait_for_function(
        "(day) => (window.tapelineCandles?.markers || []).some("
        "(m) => m.time === day && m.text === 'Hammer' && m.position === 'belowBar')",
        arg=day,
        timeout=WAIT_MS,
    )


def test_toggle_draws_markers_for_a_planted_hammer(
    page, login, stack, hammer_day, docs_dir
):
    login(page)
    page.goto(stack.url + "/instruments/SOL/USD/?tf=1d")
    page.wait_for_selector("body[data-ready]", state="attached")
    chart = page.locator("#chart")
    page.wait_for_function(
        "Number(document.getElementById('chart').dataset.bars) >= 40", timeout=WAIT_MS
    )
    toggle = page.get_by_role("checkbox", name="Candlestick patterns")
    expect(toggle).not_to_be_checked()
    legend = page.locator("#candles-legend")
    expect(legend).to_be_hidden()

    toggle.check()
    hammer_marked(page, hammer_day)
    expect(legend).to_be_visible()
    expect(legend.locator("dt.bullish", has_text="Hammer")).to_be_visible()
    expect(legend).to_contain_text("Small body on a long lower shadow")
    expect(page.locator("#candles-toggle")).to_have_attribute("data-saved", "true")
    # The marker is on the chart's own marker list (what the canvas draws).
    drawn = page.evaluate(
        "(day) => window.tapelineCandles.markers.filter((m) => m.time === day)"
        ".map((m) => m.text)",
        hammer_day,
    )
    assert "Hammer" in drawn
    chart.scroll_into_view_if_needed()
    page.screenshot(path=str(docs_dir / "chart-candles.png"))

    # Remembered: the next visit draws them without a click; off clears them.
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    expect(page.get_by_role("checkbox", name="Candlestick patterns")).to_be_checked()
    hammer_marked(page, hammer_day)
    page.get_by_role("checkbox", name="Candlestick patterns").uncheck()
    expect(legend).to_be_hidden()
    page.wait_for_function("window.tapelineCandles.markers.length === 0")
    expect(page.locator("#instrument")).to_have_attribute("data-candle-markers", "0")
