"""What the browser tests read off the dashboard page and send it, shared by
the e2e modules."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from channels.layers import get_channel_layer

LIVE_SECONDS = 30_000  # ms to wait for something the stream should bring
# ms to wait for an instrument's next trade: the simulator's tape, on the wall
# clock here, pauses up to ~63 s between trades (tests.plugins.simulator).
TRADE_WAIT = 90_000


def group_send(group: str, message: dict) -> None:
    """Send from a thread of its own: Playwright's loop owns this one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(
            asyncio.run, get_channel_layer().group_send(group, message)
        ).result()


def ready(page) -> None:
    """Wait until the page's module has wired its controls."""
    page.wait_for_selector("body[data-ready]", state="attached")


def row(page, symbol: str):
    return page.locator(f'#quote-rows tr[data-symbol="{symbol}"]')


def seq_of(page, symbol: str) -> int:
    return int(row(page, symbol).get_attribute("data-seq") or 0)


def wait_for_new_seq(page, symbol: str, after: int) -> None:
    page.wait_for_function(
        '([s, n]) => Number(document.querySelector(`#quote-rows tr[data-symbol="${s}"]`)'
        "?.dataset.seq || 0) > n",
        arg=[symbol, after],
        timeout=LIVE_SECONDS,
    )
