"""One simulated WebSocket client session (output queue, writer, reading
loop) and the per-tick window cache sessions are pumped with (`TickContext`).

Protocol modules subclass `Session` (`alpaca.AlpacaSession`, ...): they parse
client messages (`on_message`) and turn tick windows into frames (`pump`).
The base class applies the faults that every protocol shares, each as the
session's own protocol sees it (`Faults.get(name, self.provider)`): `stall`
drops data frames, `malformed_rate` corrupts them, and `freeze` (set by the
ticker through `set_frozen`) stops the session completely: the reading loop
stops reading (so no ping is answered: aiohttp answers pings inside
`receive()`), the writer sends nothing and no data is produced, until the
freeze ends and the session carries on like a SIGCONTed process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from aiohttp import WSMsgType, web

from simulator.state import ExchangeState
from simulator.tape import Tape, Window

#: frames queued for one client before it counts as too slow
MAX_QUEUED_FRAMES = 20_000
_CLOSE = object()


class TickContext:
    """Per-tick cache so a window and its encodings are built once per tick
    whatever the number of sessions wanting them."""

    def __init__(
        self, tape: Tape, t0_ns: int, t1_ns: int, *, quote_window_ns: int | None = None
    ) -> None:
        self.tape = tape
        self.t0_ns = t0_ns
        self.t1_ns = t1_ns
        self.quote_window_ns = quote_window_ns
        self.windows: dict[tuple[str, int], Window | None] = {}
        self.cache: dict[tuple, object] = {}

    def window(self, symbol: str, shift_ns: int = 0) -> Window | None:
        key = (symbol, shift_ns)
        if key not in self.windows:
            quotes_after = None
            if self.quote_window_ns is not None:
                quotes_after = self.t1_ns - shift_ns - self.quote_window_ns
            self.windows[key] = self.tape.window(
                symbol,
                self.t0_ns - shift_ns,
                self.t1_ns - shift_ns,
                quotes_after_ns=quotes_after,
            )
        return self.windows[key]

    def memo(self, key: tuple, build: Callable[[], object]) -> object:
        value = self.cache.get(key)
        if value is None:
            value = build()
            self.cache[key] = value
        return value


class Session:
    """One WebSocket client."""

    provider = ""

    def __init__(
        self, sim: ExchangeState, request: web.Request, ws: web.WebSocketResponse
    ):
        self.sim = sim
        self.request = request
        self.ws = ws
        self.path = request.path
        self.queue: deque = deque()
        self.wakeup = asyncio.Event()
        self.opened_at = asyncio.get_running_loop().time()
        self.binary = False
        self.closing = False
        self.close_requested = asyncio.Event()
        self.close_with: tuple[int, str] = (1000, "")
        self.data_frames_sent = 0
        self.task: asyncio.Task | None = None
        # Freeze: `running` is set while the session works, `paused` while frozen.
        self.running = asyncio.Event()
        self.running.set()
        self.paused = asyncio.Event()
        self.frozen_at = 0.0

    # --- output -------------------------------------------------------------
    def send_control(self, frame: bytes | str) -> None:
        self._push(frame)

    def send_data(self, frame: bytes | str) -> None:
        faults = self.sim.faults
        if self.closing or self.frozen or faults.get("stall", self.provider):
            return
        rate = faults.get("malformed_rate", self.provider)
        if rate and faults.chance(rate):  # type: ignore[arg-type]
            frame = _corrupt(frame)
        self._push(frame)

    def close_after_queue(self, code: int = 1000, message: str = "") -> None:
        self.closing = True
        self.queue.append((_CLOSE, code, message))
        self.wakeup.set()

    def _push(self, frame: bytes | str) -> None:
        if len(self.queue) >= MAX_QUEUED_FRAMES:
            self.on_slow_client()
            return
        self.queue.append(frame)
        self.wakeup.set()

    def close_now(self, code: int = 1000, message: str = "") -> None:
        """Close ahead of whatever is still queued (server shutdown)."""
        self.queue.clear()
        self.closing = True
        self.close_with = (code, message)
        self.close_requested.set()

    def on_slow_client(self) -> None:
        self.queue.clear()
        self.close_after_queue(1008, "slow client")

    async def writer(self) -> None:
        ws = self.ws
        running = self.running
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.queue:
                if not running.is_set():  # frozen: hold everything queued
                    await running.wait()
                    continue
                frame = self.queue.popleft()
                if isinstance(frame, tuple) and frame[0] is _CLOSE:
                    # Everything before it is sent; the reading task closes.
                    # Not here: aiohttp's close() from another task while
                    # receive() waits wakes the reader with CLOSING and then
                    # closes the socket without awaiting the client's close
                    # reply; whatever the client still sends (it has not read
                    # the close frame yet) is answered with a TCP reset, its
                    # next write fails (EPIPE) and its transport dies before
                    # it reads the close frame (code 1006 instead of ours).
                    self.close_with = (frame[1], frame[2])
                    self.close_requested.set()
                    return
                if ws.closed:
                    return
                if callable(frame):
                    await frame()
                    continue
                if isinstance(frame, str):
                    await ws.send_str(frame)
                elif self.binary:
                    await ws.send_bytes(frame)
                else:
                    await ws.send_frame(frame, WSMsgType.TEXT)
                self.data_frames_sent += 1

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a network failure)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    # --- freeze -------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return not self.running.is_set()

    def set_frozen(self, frozen: bool, loop_time: float) -> None:
        """Start or end a freeze (called on the loop by the ticker)."""
        if frozen and not self.frozen:
            self.frozen_at = loop_time
            self.running.clear()
            self.paused.set()
        elif not frozen and self.frozen:
            self.paused.clear()
            self.running.set()
            self.on_thaw(loop_time - self.frozen_at)

    def on_thaw(self, frozen_for: float) -> None:
        """The session resumes after `frozen_for` s: timers that measure the
        client (auth deadline, pong timeout, drop_every) skip the frozen time."""
        self.opened_at += frozen_for

    # --- hooks --------------------------------------------------------------
    async def on_open(self) -> None:
        """Called once the upgrade is done."""

    async def on_message(self, msg) -> None:
        """Called for every TEXT/BINARY message."""

    async def on_ping_pong(self, msg) -> None:
        """PING/PONG frames (only seen with `autoping=False`)."""

    def pump(self, ctx: TickContext) -> None:
        """Queue the data frames of this tick."""

    def on_tick(self, loop_time: float) -> None:
        """Periodic housekeeping (timeouts)."""

    def on_closed(self) -> None:
        """Called when the connection ends."""

    # --- the reading loop ---------------------------------------------------
    async def run(self) -> web.WebSocketResponse:
        sim = self.sim
        self.task = asyncio.current_task()
        sim.sessions.add(self)
        writer = asyncio.create_task(self.writer())
        close_wanted = asyncio.create_task(self.close_requested.wait())
        try:
            await self.on_open()
            while True:
                if self.frozen:
                    # Read nothing (no ping answered) until thawed or closed.
                    thawed = asyncio.ensure_future(self.running.wait())
                    await asyncio.wait(
                        {thawed, close_wanted}, return_when=asyncio.FIRST_COMPLETED
                    )
                    thawed.cancel()
                    if close_wanted.done():
                        await self._close_handshake()
                        break
                    continue
                receive = asyncio.ensure_future(self.ws.receive())
                freeze = asyncio.ensure_future(self.paused.wait())
                await asyncio.wait(
                    {receive, close_wanted, freeze}, return_when=asyncio.FIRST_COMPLETED
                )
                freeze.cancel()
                if not receive.done():
                    # A pending read is cancelled before it took a message
                    # off aiohttp's queue: nothing the client sent is lost.
                    receive.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await receive
                    if close_wanted.done():
                        await self._close_handshake()
                        break
                    continue  # frozen
                msg = receive.result()
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self.on_message(msg)
                elif msg.type in (WSMsgType.PING, WSMsgType.PONG):
                    await self.on_ping_pong(msg)
                else:  # CLOSE, CLOSING, CLOSED, ERROR
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            sim.sessions.discard(self)
            self.on_closed()
            for task in (writer, close_wanted):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        return self.ws

    async def _close_handshake(self) -> None:
        code, message = self.close_with
        # With no receive() pending, close() sends the close frame, then
        # reads (and drops) what the client still sends until its close
        # reply: the socket closes only after that, so no late client frame
        # meets a closed socket (TCP reset).
        await self.ws.close(code=code, message=message.encode())


def _corrupt(frame: bytes | str) -> bytes | str:
    """A frame no parser can accept: cut in the middle of the payload."""
    cut = max(1, len(frame) // 2)
    return frame[:cut]
