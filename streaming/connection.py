"""One provider WebSocket connection: a thread of its own connects, the
worker's event loop reads.

The thread connects with websocket-client (UTF-8 validation off: it is the
receive-time cost), authenticates and reconnects. While a session is up it
hands the socket to the worker's loop (`streaming.loop_reading`) and waits
for the session's end. On the loop, `_frame` takes each frame: it answers
the server's pings, parses the frame and hands its events to
`sink(connection, received_at, events)`, the worker's inbox, drained on
the same loop. The connection never touches the database or the channel
layer.

Lifecycle markers (`Lifecycle`) go through the same sink, in order with the
data, so the worker sees "down" before the first event of the next session.

Reconnects use `Backoff` (1 s doubling to 60 s, full jitter, reset after a
healthy period). A provider answering "connection limit" (Alpaca 406: it holds
a dropped session for about 90 s) is retried only after
`connection_limit_backoff`. Authentication failure ends the thread for good:
one clear log line, state `auth_failed`, no retry.

Just over 400 lines: one session's whole life (connect, authenticate,
subscribe, ping, receive, reconnect) reads in order in one class.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import websocket

from core.logs import RateLimitedLog
from marketdata.events import Control, ControlType
from streaming.backoff import Backoff
from streaming.feed_symbols import SymbolSubscriptions
from streaming.loop_reading import LoopReading, SessionSocket, read_ahead
from streaming.stats import ConnectionStats

logger = logging.getLogger(__name__)
# Connection attempts back off to one a minute; the lines go with them.
connect_failures = RateLimitedLog(logger)


class State:
    IDLE = "idle"
    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    LIVE = "live"
    BACKOFF = "backoff"
    AUTH_FAILED = "auth_failed"
    STOPPED = "stopped"

    TERMINAL = frozenset({AUTH_FAILED, STOPPED})


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A connection came up (authenticated) or went down; `at` is epoch s."""

    kind: ClassVar[str] = "lifecycle"
    state: str  # "up" | "down"
    at: float
    reason: str = ""


Sink = Callable[["FeedConnection", float, list], None]


def redact_url(url: str) -> str:
    """The URL without its query (Finnhub puts the token there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class FeedConnection(SymbolSubscriptions, LoopReading):
    """A provider stream for one asset-class endpoint (e.g. Alpaca stocks)."""

    def __init__(
        self,
        *,
        key: str,
        provider,
        asset_class: str,
        sink: Sink,
        recorder=None,
        backoff: Backoff | None = None,
        connection_limit_backoff: float = 95.0,
        connect_timeout: float = 10.0,
        ping_timeout: float = 3.0,
    ) -> None:
        self.key = key
        self.provider = provider
        self.provider_name = provider.name
        self.asset_class = asset_class
        self.sink = sink
        self.recorder = recorder
        self.backoff = backoff or Backoff()
        self.connection_limit_backoff = connection_limit_backoff
        self.connect_timeout = connect_timeout
        self.ping_timeout = ping_timeout
        self.serves: set[str] = {asset_class}  # asset classes on this endpoint
        # WebSocket pings: a silent dead server (or middlebox) is found within
        # `ping_timeout` of a ping, even for quiet instruments.
        self.ping_sent_at: float | None = None
        self.last_pong_at: float | None = None
        self.stats = ConnectionStats()

        self.state = State.IDLE
        self.state_since = time.time()
        self.authenticated_at: float | None = None
        self.last_error = ""
        self.url = ""
        self.base_url = ""  # stream_url without symbols: what identifies the endpoint
        # Kept by the worker's loop: event time of the newest data, and the
        # first minute not seen completely since the session was lost.
        self.last_event_ts = None
        self.gap_start = None
        self._init_symbols()
        self._min_delay = 0.0
        self._preset: set[str] = set()
        self._forced = ""
        self._ws: websocket.WebSocket | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # reads the sessions
        self._reading = None  # `LoopReading`

    # --- control from the worker's loop ----------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the connection's thread; `loop` (the running one by default)
        reads its sessions."""
        self._loop = loop or asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"feed-{self.key}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self.shutdown_now()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state(
            State.STOPPED if self.state != State.AUTH_FAILED else self.state
        )

    def shutdown_now(self) -> None:
        """Ask the thread to stop and break its socket at once (no waiting)."""
        self._stop.set()
        self._shutdown_socket()
        self._stop_reading(State.STOPPED)

    def use_socket(self, ws) -> None:
        """Make `ws` (an open websocket: `send`, `ping`, `close`) this
        connection's session socket: subscriptions go out on it while the
        session is live. The connection's thread calls it on every connect."""
        self._ws = ws

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def public_url(self) -> str:
        return redact_url(self.url)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def force_reconnect(self, reason: str) -> None:
        """Drop the socket; the thread reconnects after its backoff delay."""
        if self._ws is not None and self.state in (State.LIVE, State.AUTHENTICATING):
            logger.warning("%s: reconnecting: %s", self.key, reason)
            self.last_error = self._forced = reason
            self._shutdown_socket()

    def ping(self) -> None:
        ws = self._ws
        if ws is not None and self.state == State.LIVE:
            if self.ping_sent_at is None:
                self.ping_sent_at = time.time()
            try:
                ws.ping()
            except Exception:  # the session's reader sees the drop
                self._shutdown_socket()

    def unanswered_ping_for(self, now: float) -> float | None:
        """Seconds since a ping that got no answer (no pong, no frame) for
        longer than `ping_timeout`; None when the server answers."""
        sent = self.ping_sent_at
        if sent is None or self.state != State.LIVE:
            return None
        waited = now - sent
        return waited if waited > self.ping_timeout else None

    # --- the connection's thread --------------------------------------------------
    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                delay = max(self.backoff.next_delay(), self._min_delay)
                self._min_delay = 0.0
                self._set_state(State.BACKOFF)
                if self._stop.wait(delay):
                    break
            first = False
            outcome = self._session()
            if outcome == State.AUTH_FAILED:
                return
        self._set_state(State.STOPPED)

    def _session(self) -> str:
        """One connection attempt and its receive loop, until it ends."""
        self._set_state(State.CONNECTING)
        self._forced = ""
        with self._lock:
            symbols = sorted(self.desired)
        self.url = self.provider.stream_url(
            asset_class=self.asset_class, symbols=symbols
        )
        try:
            ws = websocket.create_connection(
                self.url,
                timeout=self.connect_timeout,
                header=self.provider.stream_headers(),
                skip_utf8_validation=True,
                enable_multithread=True,
                class_=SessionSocket,
            )
        except websocket.WebSocketBadStatusException as exc:
            return self._handshake_refused(exc)
        except Exception as exc:  # any failure to connect retries
            self.last_error = f"connect failed: {exc}"
            connect_failures.warning(self.key, "%s: connect failed", self.key, exc=exc)
            self.stats.connect_failures += 1
            return State.BACKOFF
        ws.settimeout(None)
        read_ahead(ws)
        self.use_socket(ws)
        self.stats.connects += 1
        if self._stop.is_set():  # stop() raced with the connect
            self._close()
            return State.STOPPED
        self._set_state(State.AUTHENTICATING)
        try:
            auth = self.provider.auth_messages()
            for message in auth:
                ws.send(message)
            implied = self.provider.handshake_events()
            # Streams named in the URL (Binance) are live already.
            self._preset = {
                symbol
                for event in implied
                if event.kind == "control" and event.type is ControlType.SUBSCRIBED
                for symbol in event.symbols
            }
            for event in implied:
                if event.kind == "control":
                    self._on_control(ws, event)
            if implied:
                self.sink(self, time.time(), list(implied))
            if not auth and self.state == State.AUTHENTICATING:
                self._on_authenticated()
            return self._read_on_loop(ws)
        except Exception as exc:  # a dropped socket ends the session
            if not self._stop.is_set() and self.state != State.AUTH_FAILED:
                self.last_error = (
                    self._forced or f"connection lost: {exc or type(exc).__name__}"
                )
            return self.state
        finally:
            self._session_ended()

    def _frame(self, ws: websocket.WebSocket, opcode: int, data) -> str | None:
        """One frame: its events to the sink; the session's outcome if it
        ends here (a frame read is always handed on, even while stopping)."""
        received_at = time.time()
        self.ping_sent_at = None  # anything received answers a ping
        if opcode == websocket.ABNF.OPCODE_PONG:
            self.last_pong_at = received_at
            return None
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frame = data.decode("utf-8", "replace")
        elif opcode == websocket.ABNF.OPCODE_BINARY:
            frame = data
        elif opcode == websocket.ABNF.OPCODE_CLOSE:
            self.last_error = "closed by the server"
            return State.BACKOFF
        else:
            return None
        stats = self.stats
        stats.frames += 1
        stats.last_frame_at = received_at
        if self.recorder is not None:
            self.recorder.write(
                self.provider_name, redact_url(self.url), frame, received_at
            )
        events = self.provider.parse_feed(frame)
        for event in events:
            if event.kind == "control":
                self._on_control(ws, event)
        self.sink(self, received_at, events)
        if self.state in (State.AUTH_FAILED, State.BACKOFF):
            return self.state  # before the stop an auth failure asks for
        if self._stop.is_set():
            return State.STOPPED
        return None

    def _on_control(self, ws: websocket.WebSocket, event: Control) -> None:
        kind = event.type
        if kind is ControlType.AUTHENTICATED:
            self._on_authenticated()
        elif kind is ControlType.AUTH_FAILED:
            self._auth_failed(event.message or "authentication failed", event.code)
        elif kind is ControlType.CONNECTION_LIMIT:
            self._min_delay = self.connection_limit_backoff
            self.last_error = (
                f"connection limit exceeded ({event.code or ''} {event.message}); "
                f"retrying after {self.connection_limit_backoff:.0f}s"
            ).replace("( ", "(")
            logger.warning("%s: %s", self.key, self.last_error)
            self._set_state(State.BACKOFF)
        elif kind is ControlType.SUBSCRIBED:
            with self._lock:
                self.confirmed = set(event.symbols)
                self.limit.accepted(len(self.confirmed))
        elif kind is ControlType.SUBSCRIPTION_ERROR:
            self.on_rejected(event)
        elif kind is ControlType.PING:
            if event.reply:
                ws.send(event.reply)
        elif kind is ControlType.SERVER_SHUTDOWN:
            self.last_error = "server announced shutdown"
            self._set_state(State.BACKOFF)
        elif kind is ControlType.MALFORMED:
            self.stats.malformed += 1
        elif kind is ControlType.ERROR:
            self.stats.errors += 1
            self.last_error = f"provider error {event.code or ''}: {event.message}"

    def _on_authenticated(self) -> None:
        with self._lock:
            if self.state == State.LIVE:
                return
            self.authenticated_at = time.time()
            self.subscribed, self._preset = set(self._preset), set()
            self.confirmed = set()
            self._set_state(State.LIVE)
            self._sync_subscriptions()
        self.sink(self, self.authenticated_at, [Lifecycle("up", self.authenticated_at)])

    def _auth_failed(self, message: str, code: int | None = None) -> None:
        detail = f"{message} ({code})" if code else message
        self.last_error = f"authentication failed: {detail}"
        logger.error(
            "%s: authentication failed: %s. Check the %s credentials; "
            "this connection stops and will not retry.",
            self.key,
            detail,
            self.provider_name,
        )
        self._set_state(State.AUTH_FAILED)
        self._stop.set()

    def _handshake_refused(self, exc: websocket.WebSocketBadStatusException) -> str:
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            self._auth_failed(f"the server refused the connection with HTTP {status}")
            return State.AUTH_FAILED
        self.stats.connect_failures += 1
        self.last_error = f"handshake refused with HTTP {status}"
        if status == 429:
            self._min_delay = max(self._min_delay, 30.0)
        connect_failures.warning(self.key, "%s: %s", self.key, self.last_error)
        return State.BACKOFF

    def _session_ended(self) -> None:
        ended = time.time()
        self.ping_sent_at = None
        up_since = self.authenticated_at
        self._close()
        if up_since is not None:
            self.backoff.healthy_for(ended - up_since)
            self.stats.reconnects += 0 if self._stop.is_set() else 1
            self.authenticated_at = None
            if not self._stop.is_set():  # a shutdown is not a gap
                self.sink(self, ended, [Lifecycle("down", ended, self.last_error)])
        if self.state not in State.TERMINAL and not self._stop.is_set():
            self._set_state(State.BACKOFF)

    def _close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close(timeout=0.5)
            except Exception:  # closing a dead socket
                pass

    def _shutdown_socket(self) -> None:
        ws = self._ws
        sock = getattr(ws, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_since = time.time()
