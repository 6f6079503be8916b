"""Display preferences in a real browser: switching the time zone moves the
chart's axis and crosshair and the watchlist's "updated" time, daily bars
stay on the exchange's days, and the theme toggle applies and persists."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

LIVE = 30_000
# Tick label formats of static/js/instrument.js, by the `fmt` it logs.
TICK_FORMATS = {
    "year": "%Y",
    "month": "%b",
    "day": "%b {day}",
    "minute": "%H:%M",
    "time": "%H:%M:%S",
    "day_minute": "%b {day} %H:%M",
}


def expected_tick(entry: dict) -> str:
    at = datetime.fromtimestamp(entry["time"], ZoneInfo(entry["zone"]))
    return at.strftime(TICK_FORMATS[entry["fmt"]]).replace("{day}", str(at.day))


def choose_zone(page, url: str, *, mode: str, name: str = "") -> None:
    """Through the preferences page, as a person would."""
    page.goto(url + "/preferences/")
    if mode == "named":
        page.get_by_label("Time zone", exact=True).fill(name)
        expect(page.get_by_role("radio", name="A named time zone")).to_be_checked()
    else:
        labels = {
            "UTC": "^UTC$",
            "exchange": "^Exchange time",
            "local": "^This browser",
        }
        page.get_by_role("radio", name=re.compile(labels[mode])).check()
    page.get_by_role("button", name="Save preferences").click()
    expect(
        page.get_by_role("alert").filter(has_text="Preferences saved.")
    ).to_be_visible()


def axis(page, url: str, timeframe: str, symbol: str = "BTC/USD") -> list[dict]:
    """Open the chart and return what its time axis drew (tick labels)."""
    page.goto(f"{url}/instruments/{symbol}/?tf={timeframe}")
    page.wait_for_function(
        "Number(document.getElementById('chart')?.dataset.bars) > 0", timeout=LIVE
    )
    page.wait_for_function(
        "(window.tapelineAxis || []).some((e) => e.kind === 'tick')", timeout=LIVE
    )
    return [e for e in page.evaluate("window.tapelineAxis") if e["kind"] == "tick"]


def crosshair(page) -> dict:
    box = page.locator("#chart").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.4)
    page.wait_for_function(
        "(window.tapelineAxis || []).some((e) => e.kind === 'crosshair')", timeout=LIVE
    )
    entries = page.evaluate("window.tapelineAxis")
    return [e for e in entries if e["kind"] == "crosshair"][-1]


def updated_time(page, symbol: str) -> str:
    cell = page.locator(f'#quote-rows tr[data-symbol="{symbol}"] [data-f=updated] time')
    expect(cell).to_have_text(re.compile(r"^\d\d:\d\d:\d\d \S"), timeout=LIVE)
    return cell.inner_text()


def assert_now_in(text: str, zone: str, label: str) -> None:
    """`text` is "HH:MM:SS <label>" and close to now on that zone's clock."""
    clock, _, name = text.partition(" ")
    assert name == label, text
    now = datetime.now(ZoneInfo(zone))
    shown = now.replace(
        hour=int(clock[:2]), minute=int(clock[3:5]), second=int(clock[6:8])
    )
    gap = abs((now - shown).total_seconds()) % 86400
    assert min(gap, 86400 - gap) < 180, f"{text} is not now in {zone} ({now:%H:%M:%S})"


def test_switching_zones_moves_the_chart_axis_and_the_updated_times(page, login, stack):
    login(page)

    choose_zone(page, stack.url, mode="UTC")
    ticks = axis(page, stack.url, "1m")
    assert {e["zone"] for e in ticks} == {"UTC"}
    assert all(e["text"] == expected_tick(e) for e in ticks), ticks
    assert "times in UTC" in page.locator("#chart-note").inner_text()
    point = crosshair(page)
    utc_text = point["text"]
    assert utc_text == datetime.fromtimestamp(point["time"], ZoneInfo("UTC")).strftime(
        "%Y-%m-%d %H:%M UTC"
    )

    # Half-hour offset, no daylight saving: no accidental match with UTC.
    choose_zone(page, stack.url, mode="named", name="Asia/Kolkata")
    ticks = axis(page, stack.url, "1m")
    assert {e["zone"] for e in ticks} == {"Asia/Kolkata"}
    assert all(e["text"] == expected_tick(e) for e in ticks), ticks
    assert "times in Kolkata (UTC+5:30)" in page.locator("#chart-note").inner_text()
    point = crosshair(page)
    at = datetime.fromtimestamp(point["time"], ZoneInfo("Asia/Kolkata"))
    assert point["text"] == at.strftime("%Y-%m-%d %H:%M Kolkata")
    same_moment = datetime.fromtimestamp(point["time"], ZoneInfo("UTC"))
    assert point["text"] != same_moment.strftime("%Y-%m-%d %H:%M UTC")

    # Daily bars keep the exchange's days whatever the display zone: an
    # AAPL day starts at midnight New York and is labelled with that date.
    days = axis(page, stack.url, "1d", symbol="AAPL")
    assert {e["zone"] for e in days} == {"America/New_York"}
    assert all(e["text"] == expected_tick(e) for e in days), days
    bars = page.evaluate(
        "fetch(document.getElementById('instrument').dataset.barsUrl + "
        "'?timeframe=1d&limit=5').then((r) => r.json())"
    )
    for bar in bars["bars"]:
        start = datetime.fromtimestamp(bar["t"], ZoneInfo("America/New_York"))
        assert (start.hour, start.minute) == (0, 0)
    assert "days of the New York session" in page.locator("#chart-note").inner_text()

    # The watchlist's "updated" times, in Kolkata for every row.
    page.goto(stack.url + "/?view=watchlists")
    assert_now_in(updated_time(page, "BTC/USD"), "Asia/Kolkata", "Kolkata")

    # Exchange time: crypto in UTC, US equities in New York.
    choose_zone(page, stack.url, mode="exchange")
    page.goto(stack.url + "/?view=watchlists")
    assert_now_in(updated_time(page, "BTC/USD"), "UTC", "UTC")
    page.get_by_role("link", name=re.compile("^Tech")).click()
    assert_now_in(updated_time(page, "AAPL"), "America/New_York", "New York")


def test_local_means_the_browsers_zone(browser, login, stack):
    context = browser.new_context(timezone_id="Pacific/Auckland")
    page = context.new_page()
    try:
        login(page)
        choose_zone(page, stack.url, mode="local")
        page.goto(stack.url + "/?view=watchlists")
        assert_now_in(updated_time(page, "BTC/USD"), "Pacific/Auckland", "Auckland")
        ticks = axis(page, stack.url, "1m")
        assert {e["zone"] for e in ticks} == {"Pacific/Auckland"}
    finally:
        context.close()


def test_theme_toggle_applies_without_reload_and_persists(page, login, stack, docs_dir):
    login(page)
    page.goto(stack.url + "/preferences/")
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "system")
    page.evaluate("window.__sameDocument = true")
    page.locator("#theme-toggle").click()
    expect(html).to_have_attribute("data-theme", "light")
    # Two quick clicks: the second choice is the one saved.
    with page.expect_response(
        lambda r: (
            r.url.endswith("/preferences/theme") and r.request.post_data == "theme=dark"
        )
    ):
        page.locator("#theme-toggle").click()
        expect(html).to_have_attribute("data-theme", "dark")
    assert page.evaluate("window.__sameDocument") is True  # no reload
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 20, 24)"
    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("radio", name="Dark", exact=True)).to_be_checked()
    page.get_by_role("radio", name="Light", exact=True).check()
    page.get_by_label("Time zone", exact=True).fill("Europe/Berlin")
    page.get_by_label("Quiet from").fill("22:00")
    page.get_by_label("until").fill("07:00")
    page.get_by_label("in", exact=True).fill("Europe/Berlin")
    page.get_by_role("button", name="Save preferences").click()
    expect(html).to_have_attribute("data-theme", "light")
    page.screenshot(path=str(docs_dir / "preferences.png"), full_page=True)
    # Back to the defaults for the other tests.
    page.get_by_role("radio", name=re.compile("Exchange time")).check()
    page.get_by_role("radio", name="System", exact=True).check()
    page.get_by_label("Quiet from").fill("")
    page.get_by_label("until").fill("")
    page.get_by_role("button", name="Save preferences").click()
    expect(html).to_have_attribute("data-theme", "system")
