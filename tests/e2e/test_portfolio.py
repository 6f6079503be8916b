"""The portfolio in a real browser: positions recorded through the page's
forms (a buy with a fee, a partial sell, a refused oversell), then the
portfolio valued live. TAPELINE_SCREENSHOTS=1 writes docs/portfolio.png."""

from __future__ import annotations

import html
import json
import re

from playwright.sync_api import expect

LIVE_SECONDS = 30_000


def record(page, *, kind: str, quantity: str, price: str, fee: str, symbol=None):
    form = page.locator("section[aria-labelledby=tx-add] form")
    if symbol:
        form.get_by_label("Symbol").fill(symbol)
    form.get_by_label("Type").select_option(kind)
    form.get_by_label("Quantity").fill(quantity)
    form.get_by_label("Price").fill(price)
    form.get_by_label("Fee").fill(fee)
    form.get_by_role("button", name="Record").click()


def test_positions_recorded_from_the_page_value_live(page, login, stack, docs_dir):
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page)
    page.goto(stack.url + "/portfolio/")
    record(page, symbol="ETH/USD", kind="buy", quantity="10", price="3000", fee="5")
    expect(page).to_have_url(re.compile(r"/portfolio/\d+/$"))
    figures = page.locator("#position-figures")
    expect(figures.locator("[data-f=average_cost]")).to_have_text("3,000.50")
    record(page, kind="sell", quantity="4", price="3100", fee="2")
    # 4 × 3,100 − 2 − 4 × 3,000.50 = +396
    expect(figures.locator("[data-f=realized]")).to_have_text("+396.00")
    expect(figures.locator("[data-f=quantity]")).to_have_text("6")
    record(page, kind="sell", quantity="7", price="3100", fee="0")
    expect(
        page.get_by_role("alert").filter(has_text="more than the 6 held")
    ).to_be_visible()
    expect(page.locator("#transactions tbody tr")).to_have_count(2)

    page.goto(stack.url + "/portfolio/")
    value = page.locator("[data-total=value]")
    before = value.inner_text()
    page.wait_for_function(
        "(b) => document.querySelector('[data-total=value]').textContent !== b",
        arg=before,
        timeout=LIVE_SECONDS,
    )
    eth = page.locator('#positions tr[data-symbol="ETH/USD"]')
    expect(eth.locator("td").nth(0)).to_have_text("6")
    expect(page.locator('#positions tr[data-symbol="BTC/USD"]')).to_be_visible()
    expect(page.locator("#recent tbody tr")).to_have_count(2)
    page.screenshot(path=str(docs_dir / "portfolio.png"), full_page=True)


def test_the_form_offers_the_day_where_the_typed_instrument_trades(page, login, stack):
    """The days of a New York evening, when the UTC date is already
    tomorrow's (written into the page on its way: the server's clock cannot
    be moved from here). The date follows the typed symbol's asset class, a
    date the user picked stays, and a form sent at once waits for the answer."""
    days = {"equity": "2026-11-30", "etf": "2026-11-30", "fx": "2026-11-30",
            "crypto": "2026-12-01"}  # fmt: skip

    def evening(route) -> None:
        response = route.fetch()
        body = re.sub(
            r'(<input type="date" name="date" value=")[\d-]+"',
            r'\g<1>2026-11-30"',
            response.text(),
        )
        body = re.sub(
            r'data-days="[^"]*"', f'data-days="{html.escape(json.dumps(days))}"', body
        )
        route.fulfill(response=response, body=body)

    def looked_up(action) -> None:
        with page.expect_response(lambda r: "search?q=" in r.url):
            action()

    login(page)
    page.route(re.compile(r"/portfolio/$"), evening)
    page.goto(stack.url + "/portfolio/")
    form = page.locator("section[aria-labelledby=tx-add] form")
    symbol, date = form.get_by_label("Symbol"), form.get_by_label("Date")
    expect(date).to_have_value("2026-11-30")
    symbol.fill("btc/usd")
    looked_up(symbol.blur)
    expect(date).to_have_value("2026-12-01")
    symbol.fill("SPY")
    looked_up(symbol.blur)
    expect(date).to_have_value("2026-11-30")
    # A date the user picked is theirs.
    date.fill("2026-11-20")
    symbol.fill("ETH/USD")
    looked_up(symbol.blur)
    expect(date).to_have_value("2026-11-20")
    # Enter in the symbol field right after typing it: recorded on the coin's day.
    date.fill("2026-11-30")
    symbol.fill("AAPL")
    looked_up(symbol.blur)
    form.get_by_label("Type").select_option("buy")
    for label, value in (("Quantity", "1"), ("Price", "3000"), ("Fee", "0")):
        form.get_by_label(label).fill(value)
    symbol.fill("ETH/USD")
    symbol.press("Enter")
    expect(page).to_have_url(re.compile(r"/portfolio/\d+/$"))
    expect(page.locator("#transactions tbody tr").first).to_contain_text("2026-12-01")
