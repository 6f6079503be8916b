"""The simulator's close frames reach clients that are still sending.

A client whose event loop is busy (CPU load) keeps writing after the server
has sent its close frame. If the server closed the socket right after the
frame, those late writes would be answered with a TCP reset, the client's
next write would fail and its transport would die before it read the close
frame (websockets then reports no received close frame, code 1006). The
blocking `time.sleep` below is that busy loop: the client reads nothing
while the server closes (at shutdown for less than the one-second grace
after which `Simulator.stop()` cuts clients that do not answer).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import websockets
from websockets.frames import Close

from tests.plugins.simulator import start_simulator


async def _send_late_then_read_close(
    ws, first: int, late: int, busy: float
) -> Close | None:
    for i in range(first):
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
    time.sleep(busy)  # busy client: the server's close frame waits unread
    try:
        for i in range(late):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": first + i}))
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed as exc:
        return exc.rcvd


def test_rate_limit_close_frame_survives_late_client_sends(simulator):
    async def main():
        async with websockets.connect(
            simulator.ws_url + "/ws/btcusdt@trade", open_timeout=5
        ) as ws:
            return await asyncio.wait_for(
                _send_late_then_read_close(ws, 6, 2, busy=1.0), 20
            )

    rcvd = asyncio.run(main())
    assert rcvd is not None, "the client never saw the close frame"
    assert (rcvd.code, rcvd.reason) == (1008, "Too many requests")


def test_shutdown_close_frame_survives_late_client_sends():
    sim = start_simulator()
    stopper = threading.Thread(target=sim.stop_thread)

    async def main():
        async with websockets.connect(
            sim.ws_url + "/ws/btcusdt@trade", open_timeout=5
        ) as ws:
            stopper.start()
            return await asyncio.wait_for(
                _send_late_then_read_close(ws, 0, 2, busy=0.3), 20
            )

    try:
        rcvd = asyncio.run(main())
    finally:
        if stopper.ident is not None:
            stopper.join(15)
        else:  # never connected
            sim.stop_thread()
    assert rcvd is not None, "the client never saw the close frame"
    assert (rcvd.code, rcvd.reason) == (1001, "server shutdown")
