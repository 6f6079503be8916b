"""A plan budget as a user sees it: the simulator plan here carries three of
the four Tech equities; the fourth row says why it does not stream, still
shows a price (the provider's snapshot), and streams as soon as a place
frees up. Staff see the budgets and provider health on the status page
(first: the second test frees a place)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import LIVE_SECONDS, ready, row, seq_of, wait_for_new_seq

pytestmark = pytest.mark.e2e

# Budget priority among equal holders and views is the symbol: AAPL, AMD and
# MSFT stream, NVDA waits.
STACK_ENV = {"SIMULATOR_SYMBOL_LIMIT": "3"}
STACK_HISTORY = False  # rows and budgets need no stored bars
OVER = "unsubscribed: over plan limit"
# This stack's simulator trades around the clock while the calendar decides
# whether equities are open: a streamed equity row is live or closed.
STREAMED = re.compile(r"^(live|closed)$")


def open_tech(page, login, stack) -> None:
    login(page)
    ready(page)
    page.get_by_role("link", name=re.compile("Tech")).click()
    ready(page)


def test_staff_see_budgets_and_provider_health(page, login, stack, docs_dir):
    login(page, "e2e-ops")
    page.goto(stack.url + "/status/")
    section = page.locator("#subscriptions")
    expect(section).to_contain_text("Subscriptions and plan budgets")
    budget = section.locator("table.budgets tr", has_text="simulator:equity")
    expect(budget).to_contain_text("3", timeout=LIVE_SECONDS)
    expect(section).to_contain_text("1 over plan limit")
    expect(section.locator(".over-budget")).to_have_text("NVDA")
    expect(section.locator("table.providers")).to_contain_text("healthy")
    page.screenshot(path=str(docs_dir / "status.png"), full_page=True)


def test_an_over_budget_row_says_so_and_streams_when_a_place_frees_up(
    page, login, stack, docs_dir
):
    open_tech(page, login, stack)
    nvda = row(page, "NVDA")
    expect(nvda.locator(".fresh")).to_have_text(OVER, timeout=LIVE_SECONDS)
    # Not streamed, but priced: the cold-start snapshot.
    expect(nvda.locator("[data-f=last]")).to_have_text(
        re.compile(r"[\d,]+\.\d{2}"), timeout=LIVE_SECONDS
    )
    expect(row(page, "AAPL").locator(".fresh")).to_have_text(STREAMED)
    wait_for_new_seq(page, "AAPL", seq_of(page, "AAPL"))
    page.wait_for_timeout(1000)
    page.screenshot(path=str(docs_dir / "dashboard-over-budget.png"))

    page.get_by_role("button", name="Remove AMD from Tech").click()
    expect(row(page, "AMD")).to_have_count(0)
    expect(nvda.locator(".fresh")).to_have_text(STREAMED, timeout=LIVE_SECONDS)
    wait_for_new_seq(page, "NVDA", seq_of(page, "NVDA"))
