"""The browser-facing WebSocket: live market data, alerts and feed status.

One socket per page at `ws/market/`. Authenticated through the session; an
anonymous socket is accepted and immediately closed with code 4401 so the page
can tell "log in again" from a network failure. Origins are checked by
`AllowedHostsOriginValidator` in `core/asgi.py`.

Client → server (JSON text frames):

    {"action": "subscribe", "symbols": ["AAPL", "BTC/USD"]}
    {"action": "unsubscribe", "symbols": ["AAPL"]}
    {"action": "status"}          # staff only: join the feed-status group
    {"action": "ping"}

Server → client:

    {"type": "hello", "max_instruments": 200, "conflate_ms": 100}
    {"type": "snapshot", "snapshots": [<doc>, ...],
     "instruments": {"AAPL": {"name": "Apple Inc.", "decimals": 2,
                              "asset_class": "equity"}, ...},
     "missing": ["XYZ"]}          # subscribed, but no data in Redis yet
    {"type": "updates", "sent_at": <epoch s>, "snapshots": [<doc>, ...]}
    {"type": "unsubscribed", "symbols": [...]}
    {"type": "anomaly", "anomaly": {...}} # a market anomaly of a watched
                                          # instrument (marketdata.anomalies)
    {"type": "alert", "alert": {...}}     # an alert of this user fired
    {"type": "ops_alert", "alert": {...}} # staff only: feed monitor raised or
                                          # cleared an ops alert (alerts.ops_services)
    {"type": "status", "status": {...}}   # feed status (staff who asked)
    {"type": "pong"}
    {"type": "error", "code": "<code>", "message": "...", "symbols": [...]}

`<doc>` is the snapshot document described in `streaming.snapshots` and carries
the instrument's `seq`. A client applies an `updates` document only when its
`seq` is higher than the one it holds; a `snapshot` frame is authoritative.
After a reconnect the client subscribes again and the `snapshot` frame brings
it up to date.

Fan-out and conflation: one `streaming.hub.MarketHub` per process joins each
instrument's group once and sends each client `updates` frames: at once while
the process is within its frame budget (at most one per display frame), else
conflated, never held longer than `settings.WS_CONFLATE_MS` (see `streaming.hub`).

Redis away: the handshake still succeeds and the socket gets
`{"type": "feed", "available": false, "message": "..."}` (also when Redis
goes away later), then `{"type": "feed", "available": true}` when it answers
again, without a reconnect; a client subscribes again then to refresh its
snapshots. Meanwhile `snapshot` frames list every symbol as `missing`.

Error codes: `bad_message` (not JSON / not an object / unknown action / bad
symbols list / a NUL or lone surrogate anywhere in the message), `unknown_symbols`, `too_many_instruments` (over
`settings.WS_MAX_INSTRUMENTS`), `rate_limited` (over
`settings.WS_MAX_MESSAGES_PER_SECOND`), `forbidden`. Repeated flooding closes
the socket with code 4429.
"""

from __future__ import annotations

import time

import orjson
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.groups import STAFF_GROUP, STATUS_GROUP, symbol_group, user_group
from core.storable import unstorable_reason
from marketdata.selectors import instruments_stream_info
from streaming.hub import FEED_UNAVAILABLE, FeedWatch, MarketHub, feed_watch, market_hub
from streaming.snapshots import snapshots_get_safe

CLOSE_UNAUTHENTICATED = 4401
CLOSE_ABUSE = 4429
MAX_SYMBOL_LENGTH = 15
# Seconds in a row with excess messages before the socket is closed.
ABUSE_WINDOWS = 3


class MarketConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        self.symbols: set[str] = set()
        self.hub: MarketHub | None = None
        self.feed: FeedWatch | None = None
        self.joined: list[str] = []
        self.window_start = time.monotonic()
        self.window_count = 0
        self.abuse_windows = 0
        self.closed = False
        await self.accept()
        if user is None or not user.is_authenticated:
            self.closed = True
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        if settings.WS_CONFLATE_MS > 0:
            self.hub = market_hub(self.channel_layer)
            self.hub_slot = self.hub.assign_slot()
        await self._join(user_group(user.pk))
        if user.is_staff:  # ops alerts (alerts.ops_services)
            await self._join(STAFF_GROUP)
        await self.send_json(
            {
                "type": "hello",
                "max_instruments": settings.WS_MAX_INSTRUMENTS,
                "conflate_ms": settings.WS_CONFLATE_MS,
            }
        )
        self.feed = feed_watch(self.channel_layer)
        self.feed.add(self)
        if not await self.feed.check() and not self.feed.available:
            await self.send_feed(available=False)

    async def send_feed(self, *, available: bool) -> None:
        if self.closed:
            return
        frame: dict = {"type": "feed", "available": available}
        if not available:
            frame["message"] = FEED_UNAVAILABLE
        await self.send_json(frame)

    async def disconnect(self, code) -> None:
        self.closed = True
        if self.feed is not None:
            self.feed.discard(self)
        if self.hub is not None and self.symbols:
            await self.hub.leave(self, list(self.symbols))
        self.symbols = set()
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = []

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)

    async def _leave(self, group: str) -> None:
        await self.channel_layer.group_discard(group, self.channel_name)
        if group in self.joined:
            self.joined.remove(group)

    # --- JSON in/out ------------------------------------------------------------
    @classmethod
    async def encode_json(cls, content) -> str:
        return orjson.dumps(content).decode()

    async def error(self, code: str, message: str, **extra) -> None:
        await self.send_json(
            {"type": "error", "code": code, "message": message, **extra}
        )

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if self.closed:
            return
        if not await self._within_rate():
            return
        if text_data is None:
            await self.error("bad_message", "Send JSON text frames.")
            return
        try:
            content = orjson.loads(text_data)
        except orjson.JSONDecodeError:  # also lone surrogates: orjson refuses them
            await self.error("bad_message", "Frame is not valid JSON.")
            return
        reason = unstorable_reason(content)
        if reason:  # it would reach a symbol lookup and fail there
            await self.error(
                "bad_message", f"Message contains {reason}; nothing was done."
            )
            return
        await self.receive_json(content)

    async def _within_rate(self) -> bool:
        """Fixed one-second windows. Excess messages get an error frame; excess
        in several windows in a row, or twice the limit in one, closes."""
        limit = settings.WS_MAX_MESSAGES_PER_SECOND
        now = time.monotonic()
        if now - self.window_start >= 1.0:
            over = self.window_count > limit
            self.abuse_windows = self.abuse_windows + 1 if over else 0
            self.window_start, self.window_count = now, 0
        self.window_count += 1
        if self.window_count <= limit:
            return True
        if self.window_count > 2 * limit or self.abuse_windows + 1 >= ABUSE_WINDOWS:
            self.closed = True
            await self.error("rate_limited", "Too many messages; closing.")
            await self.close(code=CLOSE_ABUSE)
            return False
        await self.error(
            "rate_limited", f"At most {limit} messages per second; message dropped."
        )
        return False

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            await self.error("bad_message", "Send a JSON object with an action.")
            return
        action = content.get("action")
        if action in ("subscribe", "unsubscribe"):
            symbols = content.get("symbols")
            if (
                not isinstance(symbols, list)
                or not symbols
                or not all(
                    isinstance(s, str) and 0 < len(s) <= MAX_SYMBOL_LENGTH
                    for s in symbols
                )
            ):
                await self.error(
                    "bad_message", "`symbols` must be a non-empty list of symbols."
                )
                return
            if len(symbols) > settings.WS_MAX_INSTRUMENTS:
                await self.error(
                    "too_many_instruments",
                    f"At most {settings.WS_MAX_INSTRUMENTS} instruments per connection.",
                    symbols=[],
                )
                return
            symbols = list(dict.fromkeys(s.strip().upper() for s in symbols))
            if action == "subscribe":
                await self.subscribe(symbols)
            else:
                await self.unsubscribe(symbols)
        elif action == "status":
            if not self.user.is_staff:
                await self.error("forbidden", "Feed status is for staff only.")
                return
            if STATUS_GROUP not in self.joined:
                await self._join(STATUS_GROUP)
        elif action == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.error("bad_message", f"Unknown action {action!r}.")

    # --- subscriptions -------------------------------------------------------------
    async def subscribe(self, symbols: list[str]) -> None:
        info = await database_sync_to_async(instruments_stream_info)(symbols=symbols)
        unknown = [s for s in symbols if s not in info]
        if unknown:
            await self.error("unknown_symbols", "No such instrument.", symbols=unknown)
        new = [s for s in symbols if s in info and s not in self.symbols]
        room = settings.WS_MAX_INSTRUMENTS - len(self.symbols)
        if len(new) > room:
            refused = new[max(room, 0) :]
            new = new[: max(room, 0)]
            await self.error(
                "too_many_instruments",
                f"At most {settings.WS_MAX_INSTRUMENTS} instruments per connection.",
                symbols=refused,
            )
        if self.hub is not None:
            await self.hub.join(self, new)
        else:
            for symbol in new:
                await self._join(symbol_group(symbol))
        self.symbols.update(new)
        # Symbols already subscribed are resent too: that is how a client resyncs.
        wanted = [s for s in symbols if s in self.symbols]
        if not wanted:
            return
        snapshots = await sync_to_async(snapshots_get_safe)(symbols=wanted)
        if snapshots is None:  # Redis away: what the hub holds, if anything
            snapshots = {}
            await self.feed.check()
        if self.hub is not None:
            # An update the hub already holds may be newer than Redis.
            for symbol in wanted:
                held = self.hub.latest_doc(symbol)
                stored = snapshots.get(symbol)
                if held is not None and (
                    stored is None or held.get("seq", 0) > stored.get("seq", 0)
                ):
                    snapshots[symbol] = held
        await self.send_json(
            {
                "type": "snapshot",
                "snapshots": list(snapshots.values()),
                "instruments": {s: info[s] for s in wanted},
                "missing": [s for s in wanted if s not in snapshots],
            }
        )

    async def unsubscribe(self, symbols: list[str]) -> None:
        gone = [s for s in symbols if s in self.symbols]
        self.symbols.difference_update(gone)
        if self.hub is not None:
            await self.hub.leave(self, gone)
        else:
            for symbol in gone:
                await self._leave(symbol_group(symbol))
        await self.send_json({"type": "unsubscribed", "symbols": gone})

    # --- channel-layer events ------------------------------------------------------
    async def market_update(self, event: dict) -> None:
        """Naive mode only (`WS_CONFLATE_MS=0`): one frame per tick."""
        snapshot = event.get("snapshot") or {}
        if snapshot.get("symbol") in self.symbols and not self.closed:
            await self.send_json({"type": "updates", "snapshots": [snapshot]})

    async def market_anomaly(self, event: dict) -> None:
        """Naive mode only (`WS_CONFLATE_MS=0`; the hub sends them otherwise)."""
        anomaly = event.get("anomaly") or {}
        if anomaly.get("symbol") in self.symbols and not self.closed:
            await self.send_json({"type": "anomaly", "anomaly": anomaly})

    async def alert_fired(self, event: dict) -> None:
        await self.send_json({"type": "alert", "alert": event.get("alert")})

    async def ops_alert(self, event: dict) -> None:
        await self.send_json({"type": "ops_alert", "alert": event.get("alert")})

    async def feed_status(self, event: dict) -> None:
        await self.send_json({"type": "status", "status": event.get("status")})
