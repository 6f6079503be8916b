"""A live session's socket, read on the worker's event loop.

`FeedConnection`'s thread connects and authenticates with websocket-client,
then hands the session's socket to the loop (`LoopReading._read_on_loop`)
and waits for the session to end. The loop reads the socket when it is
readable: it never blocks there (a frame that has only partly arrived waits
in websocket-client's frame buffer for the next read) and reads at most
`FRAMES_PER_CALL` frames before others get a turn. Each whole frame goes to
the connection's `_frame`, on the thread that applies its events.

Why: with a receive thread, every frame crossed from that thread's core to
the loop's (about 200 parsed objects a frame) and woke the loop from the
other core. The worker spent about a third more CPU for the same feed
(bench/PROFILE-ingest.md, stop 29).

Sends block, as they always did, but only up to `SEND_TIMEOUT`
(`SessionSocket`): a server that stops reading ends its session instead of
holding the loop.
"""

from __future__ import annotations

import asyncio
import ssl
from concurrent.futures import Future

import websocket

# Bytes a frame read asks the socket for (see `read_ahead`).
READ_AHEAD = 65536
# Frames read in one loop callback before others get a turn.
FRAMES_PER_CALL = 32
# Longest a send may wait for the server to take it.
SEND_TIMEOUT = 10.0
# What a read of a socket that has nothing more yet raises.
NOTHING_YET = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def read_ahead(ws: websocket.WebSocket) -> None:
    """Make `ws` read frames from the socket in one system call where it
    can. websocket-client asks for exactly the bytes it needs next (the
    header, the length, the payload: three reads or more a frame,
    bench/PROFILE-ingest.md); its frame buffer keeps whatever a read returns
    beyond that for the next frame, so asking for more is all it takes."""
    recv = ws._recv
    ws.frame_buffer.recv = lambda _wanted: recv(READ_AHEAD)


class SessionSocket(websocket.WebSocket):
    """websocket-client's socket, which the loop reads without blocking: a
    send makes the socket blocking (up to `SEND_TIMEOUT`) for its own
    duration, so a frame is never half sent."""

    def _send(self, data):
        sock = self.sock
        if sock is None or sock.gettimeout() != 0:
            return super()._send(data)
        sock.settimeout(SEND_TIMEOUT)
        try:
            return super()._send(data)
        finally:
            if self.sock is not None:
                self.sock.settimeout(0)


class LoopReading:
    """`FeedConnection`'s reading on the loop. The connection provides
    `_loop`, `_reading` (None) and `_frame(ws, opcode, data)`: the session's
    outcome when the frame ends it, else None."""

    _loop: asyncio.AbstractEventLoop | None
    # What the loop reads: (socket, its file descriptor, the session's end).
    _reading: tuple[websocket.WebSocket, int, Future] | None

    def _read_on_loop(self, ws: websocket.WebSocket) -> str:
        """On the connection's thread: hand the socket to the loop and wait
        for the session to end. Returns its outcome, or raises what ended
        it (a dropped socket)."""
        ended: Future = Future()
        ws.sock.setblocking(False)
        self._loop.call_soon_threadsafe(self._listen, ws, ended)
        return ended.result()

    def _stop_reading(self, outcome: str) -> None:
        """End the session now, from any thread (`shutdown_now`): the loop
        may be about to wait for the connection's thread."""
        loop = self._loop
        if loop is None:
            return
        if _running_loop() is loop:
            self._end_reading(outcome)
            return
        try:
            loop.call_soon_threadsafe(self._end_reading, outcome)
        except RuntimeError:
            pass  # the loop is closed: nothing reads

    def _listen(self, ws: websocket.WebSocket, ended: Future) -> None:
        try:
            fd = ws.sock.fileno()
            self._loop.add_reader(fd, self._readable)
        except Exception as exc:  # the socket went meanwhile
            ended.set_exception(exc)
            return
        self._reading = (ws, fd, ended)
        self._readable()  # the handshake's read may have buffered frames

    def _readable(self) -> None:
        reading = self._reading
        if reading is None:
            return
        ws = reading[0]
        try:
            for _ in range(FRAMES_PER_CALL):
                try:
                    opcode, data = ws.recv_data(control_frame=True)
                except NOTHING_YET:
                    return
                outcome = self._frame(ws, opcode, data)
                if outcome is not None:
                    self._end_reading(outcome)
                    return
            # More may be in the frame buffer, where the socket's readiness
            # does not show it.
            self._loop.call_soon(self._readable)
        except Exception as exc:  # a dropped socket ends the session
            self._end_reading(exc)

    def _end_reading(self, outcome: str | Exception) -> None:
        reading, self._reading = self._reading, None
        if reading is None:
            return
        _, fd, ended = reading
        self._loop.remove_reader(fd)
        if isinstance(outcome, Exception):
            ended.set_exception(outcome)
        else:
            ended.set_result(outcome)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
