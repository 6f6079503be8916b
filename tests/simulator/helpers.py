"""Small synchronous helpers for talking to the simulator over real sockets."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable

import msgpack
import websockets


def collect(url: str, script: Callable, *, timeout: float = 20.0, **connect_kwargs):
    """Run `await script(ws)` against a fresh websockets connection."""

    async def main():
        async with websockets.connect(url, open_timeout=5, **connect_kwargs) as ws:
            return await asyncio.wait_for(script(ws), timeout)

    return asyncio.run(main())


async def recv_json(ws, timeout: float = 10.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_msgpack(ws, timeout: float = 10.0):
    return msgpack.unpackb(await asyncio.wait_for(ws.recv(), timeout))


async def alpaca_login(ws, sim) -> None:
    assert await recv_json(ws) == [{"T": "success", "msg": "connected"}]
    await ws.send(
        json.dumps({"action": "auth", "key": sim.key_id, "secret": sim.secret})
    )
    assert await recv_json(ws) == [{"T": "success", "msg": "authenticated"}]


def wait_for(
    predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class StreamRunner:
    """Runs an alpaca-py DataStream (which owns its asyncio loop) in a thread."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.items: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=stream.run, daemon=True)

    def handler(self, kind: str):
        async def handle(item) -> None:
            self.items.put((kind, item))

        return handle

    def start(self) -> StreamRunner:
        self.thread.start()
        return self

    def drain(self, until: Callable[[list], bool], timeout: float = 30.0) -> list:
        got: list = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(got):
            try:
                got.append(self.items.get(timeout=0.2))
            except queue.Empty:
                pass
        return got

    def stop(self) -> None:
        if wait_for(lambda: self.stream._loop is not None, timeout=5):
            try:
                self.stream.stop()
            except Exception:  # loop already gone
                pass
        self.thread.join(15)
