"""The dashboard in a real browser against the real stack: simulator →
start_streams → Redis channel layer → Daphne → Chromium; with it the whole
alert path (a rule from the alerts page fires on live trades and comes back
as the owner's toast), and the browser modules' own checks (format.js on the
shared rounding table, imports that start nothing, test hooks, the CSRF token).

Over 400 lines because its tests share one stack (the `stack` fixture is
per module and takes ~20 s to start).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core.groups import user_group
from marketdata.rollups import STEPS
from tests.e2e.conftest import ROOT, database_access
from tests.e2e.pages import (
    LIVE_SECONDS,
    TRADE_WAIT,
    group_send,
    ready,
    row,
    seq_of,
    wait_for_new_seq,
)
from tests.plugins.simulator import free_port

pytestmark = pytest.mark.e2e


def test_log_in_and_watch_prices_change(page, login, stack):
    # The README's dashboard screenshots come from the demo (tests/e2e/test_demo.py).
    login(page)
    badge = page.locator("#conn-badge")
    expect(badge).to_have_text("connected", timeout=LIVE_SECONDS)
    tabs = page.get_by_role("navigation", name="Your watchlists")
    expect(tabs.get_by_role("link", name=re.compile("Crypto"))).to_have_attribute(
        "aria-current", "page"
    )
    btc = row(page, "BTC/USD")
    expect(btc).to_be_visible()
    first_seq = seq_of(page, "BTC/USD")
    first_last = btc.locator("[data-f=last]").inner_text()
    wait_for_new_seq(page, "BTC/USD", first_seq)
    # The price cell follows the stream's trades, formatted to BTC/USD's 0.01
    # increment.
    page.wait_for_function(
        '(before) => document.querySelector(\'#quote-rows tr[data-symbol="BTC/USD"] '
        "[data-f=last]').textContent !== before",
        arg=first_last,
        timeout=TRADE_WAIT,
    )
    assert re.fullmatch(r"[\d,]+\.\d{2}", btc.locator("[data-f=last]").inner_text())
    expect(btc.locator(".fresh")).to_have_text("live")
    expect(btc.locator("[data-f=age]")).to_have_text(re.compile(r"\d+ s ago"))
    # The session sparkline comes from the stored minute bars.
    assert len(btc.locator("polyline").get_attribute("points").split()) > 2

    page.get_by_role("link", name=re.compile("Tech")).click()
    ready(page)
    expect(row(page, "AAPL")).to_be_visible()
    wait_for_new_seq(page, "AAPL", seq_of(page, "AAPL"))


def test_a_ticking_price_keeps_one_flash_that_only_fades(page, login, stack):
    # Four price changes in four display frames (the dashboard's own
    # `quotes` events): one flash animation on the cell, restarted, fading the
    # tint layer's opacity (the compositor's work, no repaint of the row); the
    # old flash stacked a background-colour animation per change.
    login(page)
    ready(page)
    expect(row(page, "BTC/USD").locator("[data-f=last]")).to_have_text(
        re.compile(r"\d"), timeout=LIVE_SECONDS
    )
    animations = page.evaluate(
        """async () => {
      const { market } = await import("/static/js/socket.js");
      const tr = document.querySelector('#quote-rows tr[data-symbol="BTC/USD"]');
      const frame = () => new Promise((done) => requestAnimationFrame(() => done()));
      // The live feed's own quotes stay out of these frames (one painted
      // between them turned the last flash the other way).
      const emit = market.emit;
      market.emit = function (type, detail) {
        if (type !== "quotes") emit.call(this, type, detail);
      };
      for (const last of ["70000.00", "70001.00", "70002.00", "69999.00"]) {
        const doc = { symbol: "BTC/USD", last, change: "1", seq: Number(tr.dataset.seq) + 1 };
        market.dispatchEvent(new CustomEvent("quotes", { detail: { docs: [doc] } }));
        await frame();
        await frame();
      }
      delete market.emit;
      const cell = tr.querySelector("[data-f=last]");
      const fixed = ["offset", "computedOffset", "easing", "composite"];
      return {
        flash: cell.dataset.flash,
        running: cell.getAnimations({ subtree: true }).map((a) => [
          a.effect.pseudoElement,
          a.effect.getKeyframes().map((k) => Object.keys(k).filter((p) => !fixed.includes(p))),
        ]),
      };
    }"""
    )
    assert animations == {
        "flash": "down",
        "running": [["::after", [["opacity"], ["opacity"]]]],
    }


PROBE_TOLERANCE_MS = 20  # the browser's epoch clock against the server's


def test_the_paint_probe_records_each_stage_of_a_tick_to_pixels(page, login, stack):
    # The stack runs with the test hooks on: the page records, per painted
    # update, the server's stamps and its own (bench.bench_latency reads them).
    login(page)
    page.wait_for_function("() => window.tapelinePaintProbe", timeout=LIVE_SECONDS)
    fields = page.evaluate("window.tapelinePaintProbe.fields")
    samples = []
    for _ in range(100):
        taken = page.evaluate("window.tapelinePaintProbe.take()")
        assert taken["dropped"] == 0
        samples += [dict(zip(fields, s, strict=True)) for s in taken["samples"]]
        if len(samples) >= 5:
            break
        page.wait_for_timeout(300)
    assert len(samples) >= 5
    order = [
        "pending_since", "normalized_at", "published_at", "hub_at", "sent_at",
        "arrived", "rendered", "next_frame",
    ]  # fmt: skip
    for sample in samples:
        assert sample["received_at"] <= sample["published_at"]
        assert sample["due_at"] <= sample["published_at"] + PROBE_TOLERANCE_MS
        times = [sample[f] for f in order]
        assert all(
            a <= b + PROBE_TOLERANCE_MS for a, b in zip(times, times[1:], strict=False)
        ), sample


def test_add_from_search_then_it_streams(page, login, stack):
    login(page)
    ready(page)
    search = page.get_by_label("Add an instrument to Crypto")
    search.fill("doge")
    option = page.get_by_role("option", name="DOGE/USD")
    expect(option).to_be_visible()
    search.press("Enter")
    doge = row(page, "DOGE/USD")
    expect(doge).to_be_visible()
    # The worker picks the new instrument up and the socket streams it.
    wait_for_new_seq(page, "DOGE/USD", 0)
    # Priced to DOGE/USD's 0.00001 increment once its first trade arrives.
    expect(doge.locator("[data-f=last]")).to_have_text(
        re.compile(r"^0\.\d{5}$"), timeout=LIVE_SECONDS
    )
    page.reload()
    ready(page)
    expect(row(page, "DOGE/USD")).to_be_visible()
    # Clean up for the other tests.
    page.get_by_role("button", name="Remove DOGE/USD from Crypto").click()
    expect(row(page, "DOGE/USD")).to_have_count(0)


def test_reorder_remove_create_and_delete(page, login, stack):
    login(page)
    page.get_by_role("link", name=re.compile("Tech")).click()
    ready(page)
    symbols = lambda: page.locator("#quote-rows tr").evaluate_all(  # noqa: E731
        "rows => rows.map(r => r.dataset.symbol)"
    )
    assert symbols() == ["AAPL", "MSFT", "NVDA", "AMD"]
    page.get_by_role("button", name="Move AAPL down").click()
    assert symbols() == ["MSFT", "AAPL", "NVDA", "AMD"]
    page.wait_for_load_state("networkidle")
    page.reload()
    ready(page)
    assert symbols() == ["MSFT", "AAPL", "NVDA", "AMD"]
    page.get_by_role("button", name="Move AAPL up").click()
    page.wait_for_load_state("networkidle")

    page.get_by_role("button", name="Remove AMD from Tech").click()
    expect(row(page, "AMD")).to_have_count(0)
    page.reload()
    ready(page)
    assert symbols() == ["AAPL", "MSFT", "NVDA"]

    page.get_by_label("New watchlist name").fill("Scratch")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Scratch")).to_be_visible()
    ready(page)
    expect(page.get_by_text("This watchlist is empty")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete list").click()
    page.wait_for_url(stack.url + "/")
    expect(
        page.get_by_role("navigation", name="Your watchlists").get_by_role(
            "link", name=re.compile("Scratch")
        )
    ).to_have_count(0)

    # Put AMD back for later tests.
    page.get_by_role("link", name=re.compile("Tech")).click()
    ready(page)
    page.get_by_label("Add an instrument to Tech").fill("AMD")
    expect(page.get_by_role("option", name=re.compile("^AMD"))).to_be_visible()
    page.get_by_label("Add an instrument to Tech").press("Enter")
    expect(row(page, "AMD")).to_be_visible()


def test_instrument_chart_timeframes_scrollback_and_live_candle(
    page, login, stack, docs_dir
):
    login(page)
    page.goto(stack.url + "/instruments/BTC/USD/")
    ready(page)
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-timeframe", "1m", timeout=LIVE_SECONDS)
    page.wait_for_function(
        "Number(document.getElementById('chart').dataset.bars) >= 500"
    )
    expect(page.locator(".market")).to_have_text(re.compile("Market open"))
    # The forming candle follows the socket.
    page.wait_for_function(
        "document.getElementById('chart').dataset.liveClose !== undefined",
        timeout=LIVE_SECONDS,
    )
    # Dragging the chart to the right reveals older bars: scroll-back loads more.
    box = chart.bounding_box()
    y = box["y"] + box["height"] / 2
    for _ in range(4):
        page.mouse.move(box["x"] + 100, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 100, y, steps=8)
        page.mouse.up()
    page.wait_for_function(
        "Number(document.getElementById('chart').dataset.bars) > 500",
        timeout=LIVE_SECONDS,
    )
    # Each redraw tells the chart's features the bar length (instrument.js reads
    # it from the buttons the server renders from STEPS).
    page.evaluate(
        """() => { window.spans = [];
        document.getElementById("instrument").addEventListener("chart:bars",
          (e) => window.spans.push([e.detail.timeframe, e.detail.span])); }"""
    )
    page.get_by_role("button", name="5M", exact=True).click()
    page.screenshot(path=str(docs_dir / "chart.png"))
    for label, timeframe in (("5M", "5m"), ("15M", "15m"), ("1H", "1h"), ("1D", "1d")):
        page.get_by_role("button", name=label, exact=True).click()
        expect(chart).to_have_attribute(
            "data-timeframe", timeframe, timeout=LIVE_SECONDS
        )
        page.wait_for_function(
            "Number(document.getElementById('chart').dataset.bars) > 0"
        )
        expect(page.get_by_role("button", name=label, exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        assert "Could not load" not in page.locator("#chart-note").inner_text()
    spans = page.evaluate("window.spans")
    assert {tf for tf, _ in spans} >= {"5m", "15m", "1h", "1d"}
    assert all(span == STEPS[tf].total_seconds() for tf, span in spans), spans
    page.get_by_role("button", name="5M", exact=True).click()
    expect(chart).to_have_attribute("data-timeframe", "5m")
    # Overlays on the price pane and oscillators in panes below it.
    for label in ("SMA", "Bollinger", "RSI", "MACD"):
        page.get_by_label(label, exact=True).check()
    expect(chart).to_have_attribute(
        "data-indicators", "sma:20,bb:20:2,rsi:14,macd:12:26:9", timeout=LIVE_SECONDS
    )
    assert page.evaluate("window.tapelineChart.panes().length") == 3
    assert "unavailable" not in page.locator("#chart-note").inner_text()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(docs_dir / "chart.png"))


def test_a_live_minute_before_the_first_page_draws_nothing(page, login, stack):
    """The chart's first page of bars is held back until a live minute for the
    symbol has reached the page: that minute must not become a lone candle
    (the chart would claim bars it has not loaded), and once the page arrives
    the chart shows the page, then follows the socket."""
    login(page)
    held = []
    page.route("**/api/instruments/BTC/USD/bars*", lambda route: held.append(route))
    page.goto(stack.url + "/instruments/BTC/USD/")
    ready(page)
    # instrument.js registered its listener when it loaded, so by the time this
    # one counts a minute, the chart has already been handed it.
    page.evaluate(
        """() => { window.liveMinutes = 0;
        window.tapelineMarket.addEventListener("quotes", (e) => {
          for (const d of e.detail.docs) if (d.symbol === "BTC/USD" && d.minute) window.liveMinutes += 1;
        }); }"""
    )
    page.wait_for_function("window.liveMinutes > 0", timeout=LIVE_SECONDS)
    chart = page.locator("#chart")
    assert chart.get_attribute("data-bars") is None
    assert chart.get_attribute("data-live-close") is None
    expect(page.locator("#chart-note")).to_have_text("Loading 1m bars…")

    assert held, "the chart asked for its bars"
    for route in held:
        route.continue_()
    page.unroute("**/api/instruments/BTC/USD/bars*")
    page.wait_for_function(
        "Number(document.getElementById('chart').dataset.bars) >= 500"
    )
    expect(page.locator("#chart-note")).to_contain_text("1m bars")
    page.wait_for_function(
        "document.getElementById('chart').dataset.liveClose !== undefined",
        timeout=LIVE_SECONDS,
    )


def test_all_eight_indicators_remembered_and_exported(page, login, stack):
    login(page)
    page.goto(stack.url + "/instruments/BTC/USD/?tf=5m")
    ready(page)
    chart = page.locator("#chart")
    page.wait_for_function(
        "Number(document.getElementById('chart').dataset.bars) > 0",
        timeout=LIVE_SECONDS,
    )
    period = page.get_by_label("Williams %R period")
    period.fill("21")
    period.press("Tab")
    labels = ("SMA", "EMA", "Bollinger", "RSI", "MACD", "Stochastic", "Williams %R")
    for label in (*labels, "ATR"):
        page.get_by_label(label, exact=True).check()
    spec = "sma:20,ema:50,bb:20:2,rsi:14,macd:12:26:9,stoch:14:3:3,willr:21,atr:14"
    expect(chart).to_have_attribute("data-indicators", spec, timeout=LIVE_SECONDS)
    # Price pane, then one pane per oscillator: RSI, MACD, stochastic, %R, ATR.
    assert page.evaluate("window.tapelineChart.panes().length") == 6
    expect(page.locator("#indicators")).to_have_attribute("data-saved", "true")
    page.reload()
    ready(page)
    expect(page.get_by_label("Williams %R", exact=True)).to_be_checked()
    expect(page.get_by_label("Williams %R period")).to_have_value("21")
    expect(chart).to_have_attribute("data-indicators", spec, timeout=LIVE_SECONDS)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    lines = open(download.value.path(), encoding="utf-8").read().splitlines()
    header = lines[0].split(",")
    assert header[:7] == [
        "time_utc",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "trades",
    ]
    assert {"willr_21", "stoch_14_3_3_d", "atr_14", "macd_12_26_9_hist"} <= set(header)
    assert download.value.suggested_filename.startswith("BTC-USD_5m_")
    assert len(lines) > 10 and lines[1].split(",")[0].endswith("Z")


def test_badge_reconnects_after_the_web_server_restarts(page, login, stack):
    login(page)
    badge = page.locator("#conn-badge")
    expect(badge).to_have_text("connected", timeout=LIVE_SECONDS)
    stack.stop("web", kill=True)
    expect(badge).to_have_text(
        re.compile(r"reconnecting \(attempt \d+\)"), timeout=10_000
    )
    expect(page.locator(".toast-warn")).to_contain_text("connection lost")
    stack.start_web()
    expect(badge).to_have_text("connected", timeout=40_000)
    expect(page.locator(".toast-ok").last).to_contain_text("restored")
    expect(page.locator(".toast-warn")).to_have_count(0)
    # Resubscribed: the rows stream again.
    wait_for_new_seq(page, "BTC/USD", seq_of(page, "BTC/USD"))


def test_stream_worker_connection_drops_and_recovers(page, browser, login, stack):
    """The simulator resets the worker's exchange connections: the status page
    counts the reconnects and the trader's dashboard keeps streaming."""
    login(page)
    ready(page)
    ops = browser.new_context()
    status = ops.new_page()
    try:
        login(status, "e2e-ops")
        status.goto(stack.url + "/status/")
        worker = f":{stack.processes['streams'].pid}:"
        crypto = status.locator('#connections tr[data-id$="crypto"]', has_text=worker)
        expect(crypto).to_be_visible(timeout=LIVE_SECONDS)
        stack.simulator.set_faults(drop_every=1)
        try:
            expect(crypto.locator("td:nth-of-type(4)")).not_to_have_text(
                "0", timeout=LIVE_SECONDS
            )
        finally:
            stack.simulator.set_faults(drop_every=None)
        expect(crypto.locator(".fresh")).to_have_text("live", timeout=LIVE_SECONDS)
        expect(status.locator("#feed-ok")).to_have_text("ok", timeout=LIVE_SECONDS)
    finally:
        ops.close()
    # The browser's own socket never dropped; prices keep coming.
    expect(page.locator("#conn-badge")).to_have_text("connected")
    wait_for_new_seq(page, "BTC/USD", seq_of(page, "BTC/USD"))


def test_portfolio_values_live(page, login, stack):
    login(page)
    page.goto(stack.url + "/portfolio/")
    value = page.locator("[data-total=value]")
    before = value.inner_text()
    assert re.fullmatch(r"[\d,]+\.\d{2}", before)
    page.wait_for_function(
        "(b) => document.querySelector('[data-total=value]').textContent !== b",
        arg=before,
        timeout=LIVE_SECONDS,
    )
    expect(
        page.locator('#positions tr[data-symbol="BTC/USD"] [data-p=weight]')
    ).to_have_text("100.0%")


def test_alert_toast_reaches_only_its_owner(
    page, browser, login, stack, django_db_blocker
):
    """Each user's socket carries only that user's alerts. A marker sent to
    each user after the other's alert proves the socket has had everything
    sent before it, so the missing toast is not merely late."""
    from django.contrib.auth import get_user_model

    with database_access(django_db_blocker):
        User = get_user_model()
        trader = User.objects.get(username="e2e-trader")
        ops = User.objects.get(username="e2e-ops")
    ops_context = browser.new_context()
    ops_page = ops_context.new_page()
    try:
        login(page)
        login(ops_page, "e2e-ops")
        for each in (page, ops_page):
            badge = each.locator("#conn-badge")
            expect(badge).to_have_text("connected", timeout=LIVE_SECONDS)

        def alert(user, message: str) -> None:
            group_send(
                user_group(user.pk),
                {"type": "alert.fired", "alert": {"message": message}},
            )

        alert(trader, "BTC/USD crossed 60,000")
        alert(ops, "for ops only")
        alert(trader, "trader marker")
        for each, text in (
            (page, "BTC/USD crossed 60,000"),
            (page, "trader marker"),
            (ops_page, "for ops only"),
        ):
            expect(each.locator(".toast-alert", has_text=text)).to_have_count(1)
        # Read once, not retried: each page has its marker (alert toasts stay
        # 15 s), so what was sent to it before the marker has arrived.
        assert page.get_by_text("for ops only").count() == 0
        assert ops_page.get_by_text("BTC/USD crossed 60,000").count() == 0
    finally:
        ops_context.close()


def _trader_alert(message: str):
    """An unseen ETH/USD price alert of e2e-trader's, fired now."""
    from django.contrib.auth import get_user_model

    from marketdata.models import Instrument
    from tests.factories import AlertEventFactory

    return AlertEventFactory(
        owner=get_user_model().objects.get(username="e2e-trader"),
        instrument=Instrument.objects.get(symbol="ETH/USD"),
        ts=timezone.now(),
        message=message,
    )


@contextmanager
def _alert_recorded_when_unseen_is_asked(page, django_db_blocker, message: str):
    """Records an alert of e2e-trader's (`message`) when the page asks for
    its unseen alerts: after the page was drawn, before its socket listens.
    Removed afterwards."""
    from alerts.models import AlertEvent

    def fire_then_answer(route) -> None:
        with database_access(django_db_blocker):
            _trader_alert(message)
        route.continue_()

    page.route("**/alerts/unseen*", fire_then_answer, times=1)
    try:
        yield
    finally:
        page.unroute("**/alerts/unseen*")
        with database_access(django_db_blocker):
            AlertEvent.objects.filter(message=message).delete()


def test_an_alert_recorded_while_the_page_loads_is_counted(
    page, login, stack, django_db_blocker
):
    """An alert recorded after the page was drawn (its count 0) but before
    the page asked for the unseen ones comes back as a toast; the count in
    the navigation says 1 with it, not 0 (the demo's first visit)."""
    login(page)
    badge = page.locator("#alerts-unseen")
    expect(badge).to_be_hidden()
    message = "ETH/USD crossed above 2,990 while the page loaded"
    with _alert_recorded_when_unseen_is_asked(page, django_db_blocker, message):
        page.reload()
        ready(page)
        expect(page.locator(".toast-alert", has_text=message)).to_be_visible()
        expect(badge).to_be_visible()
        expect(badge).to_have_text("1")


def test_the_alerts_page_says_when_alerts_fired_after_it_was_drawn(
    page, login, stack, django_db_blocker
):
    """Its history does not move under the pointer: a line above it counts
    the alerts that fired since, with a link that draws the list again."""
    from alerts.models import AlertEvent
    from alerts.services import alert_payload

    login(page)
    page.goto(stack.url + "/alerts/")
    expect(page.locator("#conn-badge")).to_have_text("connected")
    line = page.locator("#history-new")
    expect(line).to_have_count(0)

    def fire(level: int) -> None:
        with database_access(django_db_blocker):
            event = _trader_alert(f"ETH/USD crossed above {level} after the list")
            payload = alert_payload(event=event)
        group_send(
            user_group(event.owner_id), {"type": "alert.fired", "alert": payload}
        )

    try:
        fire(2990)
        expect(line).to_have_text("1 new alert since this list was drawn. Show them")
        history = page.locator("#history")
        assert "after the list" not in history.inner_text()  # (the toast says it)
        fire(2995)
        expect(line).to_contain_text("2 new alerts since this list was drawn.")
        line.get_by_role("link", name="Show them").click()
        for level in (2990, 2995):
            expect(history).to_contain_text(f"crossed above {level} after the list")
        expect(line).to_have_count(0)
    finally:
        with database_access(django_db_blocker):
            AlertEvent.objects.filter(message__endswith="after the list").delete()


def test_the_alerts_page_counts_an_alert_recorded_while_it_loaded(
    page, login, stack, django_db_blocker
):
    """An alert recorded after the history was drawn but before the page's
    socket listened reaches the page only through its unseen list: the line
    above the history counts it, once, though it is news to the list."""
    login(page)
    message = "ETH/USD crossed above 2,990 while the list loaded"
    with _alert_recorded_when_unseen_is_asked(page, django_db_blocker, message):
        page.goto(stack.url + "/alerts/")
        line = page.locator("#history-new")
        expect(line).to_have_text("1 new alert since this list was drawn. Show them")
        expect(page.locator("#alerts-unseen")).to_have_text("1")
        history = page.locator("#history")
        assert message not in history.inner_text()
        line.get_by_role("link", name="Show them").click()
        expect(history).to_contain_text(message)
        expect(line).to_have_count(0)


def test_the_watchlist_fits_a_laptop_screen(browser, login, stack):
    """At 1280 px every column of the watchlist shows, the row's buttons
    included: the company name gives up its width first (cut with an
    ellipsis), and the table never scrolls sideways."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        login(page)
        page.get_by_role("link", name=re.compile("Tech")).click()
        ready(page)
        wrap = page.locator("#quote-rows").locator("xpath=ancestor::div[1]")
        expect(row(page, "AMD").locator("[data-f=last]")).not_to_have_text("")
        sideways = wrap.evaluate("w => w.scrollWidth - w.clientWidth")
        assert sideways <= 0, f"the watchlist scrolls {sideways} px sideways"
        box = row(page, "AMD").locator("td").last.bounding_box()  # its buttons
        assert box is not None and box["x"] + box["width"] <= 1280
        name = row(page, "AMD").locator(".c-name")
        assert name.inner_text().startswith("Advanced Micro Devices")
    finally:
        context.close()


def test_small_screen_375px(browser, login, stack):
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    try:
        login(page)
        ready(page)
        expect(row(page, "BTC/USD").locator("[data-f=last]")).to_be_visible()
        expect(row(page, "BTC/USD").locator(".c-name")).to_be_hidden()
        # No sideways scrolling of the page itself.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 376
        # Keyboard: the search box is reachable and usable without a mouse.
        page.get_by_label("Add an instrument to Crypto").focus()
        page.keyboard.type("eth")
        expect(page.get_by_role("option", name="ETH/USD")).to_be_visible()
        page.keyboard.press("Escape")
    finally:
        context.close()


# --- the alert path -----------------------------------------------------------------
ALERT_WAIT_MS = 45_000


def last_price(symbol: str) -> Decimal:
    from streaming.snapshots import snapshots_get

    return Decimal(snapshots_get(symbols=[symbol])[symbol]["last"])


def test_rule_from_the_page_fires_on_live_trades(page, login, stack, django_db_blocker):
    """The whole alert path: a rule created on the alerts page reaches the
    running stream worker, fires on simulator trades, is stored, shows as a
    toast on the owner's dashboard, and is listed unseen until marked seen."""
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
    expect(page.locator("#conn-badge")).to_have_text("connected", timeout=ALERT_WAIT_MS)
    # Activate them just above and just below the last trade (as an admin
    # edit would): the running worker picks the change up and the next move
    # either way crosses one of them. If the price ran away before the worker
    # loaded them, arm them again around the new price.
    from alerts.services import alert_rule_set_active, alert_rule_update

    toast = page.locator(".toast-alert").filter(has_text="BTC/USD crossed")
    deadline = time.monotonic() + ALERT_WAIT_MS / 1000 * 2
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


# --- the browser modules ---------------------------------------------------------


def test_an_open_page_still_saves_after_a_log_in_in_another_tab(browser, login, stack):
    """Logging in rotates the CSRF token: an older page sends the cookie's
    (current) token, not the one its forms were rendered with."""
    context = browser.new_context()
    try:
        page = context.new_page()
        login(page)
        page.get_by_role("link", name=re.compile("Tech")).click()
        ready(page)
        other = context.new_page()
        other.goto(stack.url + "/")
        other.get_by_role("button", name="Log out e2e-trader").click()
        login(other)
        other.close()
        with page.expect_response(re.compile("/reorder")) as saved:
            page.get_by_role("button", name="Move AAPL down").click()
        assert saved.value.status == 200
        with page.expect_response(re.compile("/reorder")) as saved:
            page.get_by_role("button", name="Move AAPL up").click()
        assert saved.value.status == 200
    finally:
        context.close()


ROUNDING = json.loads((ROOT / "tests" / "fixtures" / "rounding.json").read_text())


def test_format_js_rounds_the_table_as_the_server_does(page, stack):
    """tests/dashboard/test_rounding.py checks the server on the same rows."""
    page.goto(stack.url + "/login/")
    got = page.evaluate(
        """async (rows) => {
          const f = await import("/static/js/format.js");
          const call = {
            price: (r) => f.fmtPrice(r.value, r.places),
            signed: (r) => f.fmtSigned(r.value, r.places),
            pct: (r) => f.fmtPct(r.value),
            compact: (r) => f.fmtCompact(r.value),
            spread: (r) => f.fmtPrice(f.difference(r.value[1], r.value[0]), r.places),
          };
          return rows.map((r) => call[r.fn](r));
        }""",
        ROUNDING["rows"],
    )
    wrong = [
        (r["fn"], r["value"], r["text"], text)
        for r, text in zip(ROUNDING["rows"], got, strict=True)
        if text != r["text"]
    ]
    assert not wrong


LIBRARY_MODULES = (
    "format",
    "hooks",
    "page",
    "socket",
    "quotes",
    "alerts",
    "theme",
    "chart_layers",
    "chart_candles",
    "chart_patterns",
    "chart_anomalies",
)


def test_importing_a_module_starts_nothing(page, stack):
    """Sockets, timers, requests and listeners start from an entry module
    (app.js, a page's own), never as a side effect of an import."""
    page.goto(stack.url + "/login/")  # signed out: no script of ours runs
    started = page.evaluate(
        """async (modules) => {
          const started = [];
          const spy = (owner, name) => {
            const real = owner[name];
            owner[name] = function (...args) {
              started.push(name);
              return real.apply(this, args);
            };
          };
          for (const name of ["setTimeout", "setInterval", "requestAnimationFrame",
                              "queueMicrotask", "fetch"]) spy(window, name);
          spy(EventTarget.prototype, "addEventListener");
          const RealSocket = window.WebSocket;
          window.WebSocket = class extends RealSocket {
            constructor(...args) { started.push("WebSocket"); super(...args); }
          };
          for (const m of modules) await import(`/static/js/${m}.js`);
          return started;
        }""",
        list(LIBRARY_MODULES),
    )
    assert started == []


def wait_for_healthz(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"daphne on {url} did not start")


def test_hooks_only_with_the_setting_on(page, login, stack):
    """BROWSER_TEST_HOOKS off (the production default): the page works and
    keeps the market socket and the chart to itself."""
    login(page)
    assert page.evaluate("typeof window.tapelineMarket") == "object"
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        + ["core.asgi:application"],
        cwd=ROOT,
        env={**stack.env, "BROWSER_TEST_HOOKS": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        other = f"http://127.0.0.1:{port}"
        wait_for_healthz(other, web)
        # Cookies do not depend on the port: still signed in.
        page.goto(other + "/instruments/BTC/USD/")
        expect(page.locator("#conn-badge")).to_have_text(
            "connected", timeout=LIVE_SECONDS
        )
        page.wait_for_function(
            "Number(document.getElementById('chart').dataset.bars) > 0",
            timeout=LIVE_SECONDS,
        )
        assert page.evaluate("document.body.dataset.testHooks") is None
        hooks = page.evaluate(
            "['tapelineMarket', 'tapelineChart', 'tapelineAxis', 'tapelineCandles']"
            ".filter((name) => name in window)"
        )
        assert hooks == []
    finally:
        web.kill()
        web.wait(5)
