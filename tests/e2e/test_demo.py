"""`make demo` as a first-time visitor meets it, built with the demo's own
commands: `seed_instruments`, `demo_setup` and `demo_history` (as the
Makefile runs them), then the Procfile's processes with their own command
lines. Equity and crypto rows are live and none is marked closed, the page
says which markets trade, a seeded alert fires (a toast, and its email in
the `worker` process's output), and the compact row menu works at 375 px.

The test runs at any hour: when US equities are outside their extended
session (04:00-20:00 New York) now, the simulator starts on a simulated
clock in the next pre-market (`--clock-start`, added to the Procfile's
command line); the worker follows the feed's clock and the page says
"simulated market time", as it would for a demo started that way.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

import pytest
from playwright.sync_api import expect

from marketdata import calendar
from tests.e2e.conftest import (
    ROOT,
    Stack,
    database_access,
    database_url,
    ensure_test_database,
)
from tests.e2e.pages import LIVE_SECONDS, ready, row, seq_of
from tests.plugins.simulator import SimulatorProcess, free_port

pytestmark = pytest.mark.e2e

PASSWORD = "demo-e2e-pass"
TOAST_WITHIN = 180  # seconds from the stream worker's start
MARGIN = timedelta(minutes=20)  # the test's own run must stay in the session


def demo_clock_start(now: datetime, *, simulated: bool = False) -> str | None:
    """None when equities trade (pre-, regular or post-market) now and for the
    test's run; else (or when `simulated`) 09:00 New York (pre-market) of the
    next trading day."""
    if (
        not simulated
        and calendar.is_open("equity", now, extended=True)
        and calendar.is_open("equity", now + MARGIN, extended=True)
    ):
        return None
    day = now.astimezone(calendar.NEW_YORK).date()
    for _ in range(15):
        at = datetime.combine(day, clock_time(9), calendar.NEW_YORK)
        if calendar.nyse_session(day) is not None and at > now:
            return at.astimezone(UTC).isoformat()
        day += timedelta(days=1)
    raise AssertionError("no trading day within 15 days")


def procfile() -> dict[str, list[str]]:
    """The Procfile's processes as argument lists for `sys.executable`."""
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        argv = shlex.split(command.replace("${WEB_PORT:-8000}", "$WEB_PORT"))
        program = argv.pop(0)
        if program.endswith("/python"):
            processes[name.strip()] = argv
        else:  # .venv/bin/daphne
            processes[name.strip()] = ["-m", program.rsplit("/", 1)[-1], *argv]
    return processes


class DemoStack(Stack):
    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def run(self, name: str, argv: list[str]) -> None:
        port = str(self.web_port)
        self.spawn(name, *(port if a == "$WEB_PORT" else a for a in argv))


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo set up and every Procfile process but `streams` running (the
    test starts it with a page open, as a visitor would find it)."""
    from django.conf import settings
    from django.core.management import call_command

    from core.redis import redis_client

    ensure_test_database(django_db_blocker)
    redis_client().flushdb()
    processes = procfile()
    assert "--hours" in processes["simulator"]
    # TAPELINE_E2E_SIMULATED_CLOCK=1 takes the night-time path at any hour.
    clock_start = demo_clock_start(
        datetime.now(UTC),
        simulated=os.environ.get("TAPELINE_E2E_SIMULATED_CLOCK") == "1",
    )
    simulator_port = free_port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "TAPELINE_PROVIDER": "simulator",
        "SIMULATOR_HOST": "127.0.0.1",
        "SIMULATOR_PORT": str(simulator_port),
        "LOG_LEVEL": "WARNING",
    }
    stack = DemoStack(env=env, simulator=None, web_port=free_port())
    stack.procfile = processes
    stack.clock_start = clock_start
    try:
        simulator = processes["simulator"]
        if clock_start is not None:
            simulator = [*simulator, "--clock-start", clock_start]
        stack.run("simulator", simulator)
        stack.simulator = SimulatorProcess(
            port=simulator_port, process=stack.processes["simulator"]
        )
        stack.simulator.wait_ready()
        stack.manage("seed_instruments")
        stack.setup_output = stack.manage(
            "demo_setup", "--username", "demo", "--password", PASSWORD
        )
        stack.manage("demo_history", "--days", "1")
        stack.run("worker", processes["worker"])
        stack.run("web", processes["web"])
        stack.wait_web()
        yield stack
    finally:
        for name in list(stack.processes):
            stack.stop(name)
        redis_client().flushdb()
        with database_access(django_db_blocker):
            call_command("flush", interactive=False, verbosity=0)


def log_in(page, stack) -> None:
    page.goto(stack.url + "/login/")
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(stack.url + "/")


def open_list(page, name: str) -> None:
    page.get_by_role("link", name=re.compile(name)).click()
    ready(page)


def symbols(page) -> list[str]:
    return page.locator("#quote-rows tr").evaluate_all(
        "rows => rows.map(r => r.dataset.symbol)"
    )


def test_make_demo_first_impressions(browser, demo, docs_dir):
    # The setup placed rules of every kind, the price ones around the price.
    for kind in (
        "price crosses above",
        "price crosses below",
        "RSI(14, 1m)",
        "EMA(9) crosses above",
        "change vs previous close",
        "volume",
    ):
        assert kind in demo.setup_output
    # A visitor opens the dashboard as the demo starts.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, demo)
    demo.run("streams", demo.procfile["streams"])
    started = time.monotonic()

    # Equities and crypto are live: nothing is marked closed while it moves.
    open_list(page, "Tech")
    for symbol in symbols(page):
        expect(row(page, symbol).locator(".fresh")).to_have_text(
            "live", timeout=LIVE_SECONDS
        )
    aapl = seq_of(page, "AAPL")
    expect(row(page, "AAPL")).not_to_have_attribute(
        "data-seq", str(aapl), timeout=LIVE_SECONDS
    )
    # The note is rendered with the page, from the worker's last report.
    note = page.locator("#market-note")
    simulated = demo.clock_start is not None
    deadline = time.monotonic() + LIVE_SECONDS / 1000
    while True:
        page.reload()
        ready(page)
        if not simulated or "Simulated market time" in note.inner_text():
            break
        assert time.monotonic() < deadline, note.inner_text()
        page.wait_for_timeout(1000)
    expect(note).to_contain_text("Crypto: trades 24/7")
    expect(note).to_contain_text(
        re.compile(r"US equities and ETFs: (pre-market|regular session|after-hours)")
    )
    page.screenshot(path=str(docs_dir / "dashboard.png"))
    open_list(page, "Crypto")
    for symbol in symbols(page):
        expect(row(page, symbol).locator(".fresh")).to_have_text(
            "live", timeout=LIVE_SECONDS
        )

    # The narrow screen: one menu button per row reorders and removes.
    narrow = browser.new_context(viewport={"width": 375, "height": 740})
    small = narrow.new_page()
    try:
        log_in(small, demo)
        open_list(small, "Tech")
        assert symbols(small)[:2] == ["AAPL", "MSFT"]
        expect(small.get_by_role("button", name="Move AAPL down")).to_be_hidden()
        toggle = small.get_by_role("button", name="Actions for AAPL")
        box = toggle.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 375
        expect(toggle).to_have_attribute("aria-haspopup", "menu")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        menu = small.get_by_role("menu", name="Actions for AAPL")
        expect(menu.get_by_role("menuitem", name="Move up")).to_be_focused()
        small.screenshot(path=str(docs_dir / "dashboard-mobile.png"))
        menu.get_by_role("menuitem", name="Move down").click()
        expect(menu).to_be_hidden()
        assert symbols(small)[:2] == ["MSFT", "AAPL"]
        small.wait_for_load_state("networkidle")
        small.reload()
        ready(small)
        assert symbols(small)[:2] == ["MSFT", "AAPL"]
        # Keyboard: open, arrow to "Remove", Enter.
        small.get_by_role("button", name="Actions for AMD").focus()
        small.keyboard.press("Enter")
        small.keyboard.press("ArrowUp")  # wraps to the last item
        expect(small.get_by_role("menuitem", name="Remove from Tech")).to_be_focused()
        small.keyboard.press("Enter")
        expect(row(small, "AMD")).to_have_count(0)
        small.reload()
        ready(small)
        assert "AMD" not in symbols(small)
    finally:
        narrow.close()

    # A seeded rule fires: a toast on the open page, and its email printed by
    # the worker (console email backend).
    left = TOAST_WITHIN - (time.monotonic() - started)
    toast = page.locator(".toast-alert", has_text="BTC/USD crossed").first
    expect(toast).to_be_visible(timeout=max(left, 1) * 1000)
    expect(page.locator("#alerts-unseen")).to_be_visible()
    page.screenshot(path=str(docs_dir / "dashboard-alert.png"))
    deadline = time.monotonic() + 30
    while "Subject:" not in demo.log("worker") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "Subject:" in demo.log("worker") and "BTC/USD" in demo.log("worker")
    context.close()
