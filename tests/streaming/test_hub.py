"""The hub's leading edge (`streaming.hub.MarketHub`), through the real ASGI
stack and the real Redis pub/sub channel layer: a client that got nothing in
the last interval is sent an update at once; updates arriving while it is
within its interval are conflated into one frame with the latest state; and
updates are held only once the process's frame budget is spent (backpressure
is simulated by a tiny budget: one client then waits up to the whole
`WS_CONFLATE_MS`)."""

from __future__ import annotations

import time

import pytest
from channels.layers import get_channel_layer

from core.groups import symbol_group
from streaming.hub import MarketHub
from tests.streaming.test_consumers import open_socket, receive_until, run, snapshot

pytestmark = pytest.mark.django_db(transaction=True)


async def watching(user, *symbols: str):
    """A market socket subscribed to `symbols`, past its snapshot frame."""
    ws = await open_socket(user)
    await ws.send_json_to({"action": "subscribe", "symbols": list(symbols)})
    await receive_until(ws, "snapshot")
    return ws


async def tick(symbol: str, seq: int) -> None:
    await get_channel_layer().group_send(
        symbol_group(symbol),
        {"type": "market.update", "snapshot": snapshot(symbol, seq, str(seq))},
    )


def test_an_idle_client_gets_the_update_without_waiting_for_the_interval(
    user, instruments, settings, monkeypatch
):
    # A minute-long interval: a frame that came through the conflation timer
    # would not arrive within the receive timeout.
    settings.WS_CONFLATE_MS = 60_000
    monkeypatch.setattr(MarketHub, "FRAMES_PER_SECOND", 1 / 60)

    async def scenario():
        ws = await watching(user, "AAPL", "MSFT")
        await tick("AAPL", 1)
        frame = await receive_until(ws, "updates", timeout=10)
        assert [d["seq"] for d in frame["snapshots"]] == [1]
        assert frame["sent_at"] > 0
        # Now within its interval: the next update waits for the interval's end.
        await tick("MSFT", 1)
        assert await ws.receive_nothing(timeout=1.0)
        await ws.disconnect()

    run(scenario)


def test_updates_within_the_interval_are_conflated_to_the_latest_state(
    user, instruments, settings, monkeypatch
):
    settings.WS_CONFLATE_MS = 2_000
    monkeypatch.setattr(MarketHub, "FRAMES_PER_SECOND", 0.5)

    async def scenario():
        ws = await watching(user, "AAPL", "MSFT")
        await tick("AAPL", 1)
        first = await receive_until(ws, "updates")
        assert [d["seq"] for d in first["snapshots"]] == [1]
        for seq in (2, 3, 4):
            await tick("AAPL", seq)
        await tick("MSFT", 7)
        held = await receive_until(ws, "updates", timeout=10)
        # One frame with the latest of each: AAPL 2 and 3 were never sent.
        assert sorted((d["symbol"], d["seq"]) for d in held["snapshots"]) == [
            ("AAPL", 4),
            ("MSFT", 7),
        ]
        assert held["sent_at"] > first["sent_at"]
        await ws.disconnect()

    run(scenario)


def test_without_backpressure_updates_are_not_held_for_the_longest_interval(
    user, instruments, settings
):
    # One client is far within the default frame budget: its interval is a
    # display frame, not the minute WS_CONFLATE_MS allows.
    settings.WS_CONFLATE_MS = 60_000

    async def scenario():
        ws = await watching(user, "AAPL")
        for seq in (1, 2, 3):
            await tick("AAPL", seq)
            frame = await receive_until(ws, "updates", timeout=10)
            assert [d["seq"] for d in frame["snapshots"]] == [seq]
        await ws.disconnect()

    run(scenario)


def test_updates_go_at_once_until_the_frame_budget_is_spent(
    user, instruments, settings, monkeypatch
):
    # A budget of one frame per 10 s refilled, holding six (a minute's
    # WS_CONFLATE_MS): the first six updates each go at once; the seventh
    # waits for the budget. (A fixed interval of clients / budget held the
    # second update 10 s though the process had frames to spare.)
    settings.WS_CONFLATE_MS = 60_000
    monkeypatch.setattr(MarketHub, "FRAMES_PER_SECOND", 0.1)

    async def scenario():
        ws = await watching(user, "AAPL")
        for seq in range(1, 7):
            await tick("AAPL", seq)
            frame = await receive_until(ws, "updates", timeout=5)
            assert [d["seq"] for d in frame["snapshots"]] == [seq]
        await tick("AAPL", 7)
        assert await ws.receive_nothing(timeout=1.0)
        await ws.disconnect()

    run(scenario)


def test_each_document_says_when_the_hub_read_it(user, instruments, settings):
    async def scenario():
        ws = await watching(user, "AAPL")
        before = time.time()
        await tick("AAPL", 1)
        frame = await receive_until(ws, "updates", timeout=10)
        (doc,) = frame["snapshots"]
        # The channel layer's share and the hub's own, apart (bench_latency).
        assert before <= doc["hub_at"] <= frame["sent_at"] <= time.time()
        await ws.disconnect()

    run(scenario)
