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
    {"type": "updates", "snapshots": [<doc>, ...]}
    {"type": "unsubscribed", "symbols": [...]}
    {"type": "alert", "alert": {...}}     # an alert of this user fired
    {"type": "status", "status": {...}}   # feed status (staff who asked)
    {"type": "pong"}
    {"type": "error", "code": "<code>", "message": "...", "symbols": [...]}

`<doc>` is the snapshot document described in `streaming.snapshots` and carries
the instrument's `seq`. A client applies an `updates` document only when its
`seq` is higher than the one it holds; a `snapshot` frame is authoritative.
After a reconnect the client subscribes again and the `snapshot` frame brings
it up to date.

Fan-out and conflation: the consumers of one process do not each join the
instrument groups. One `MarketHub` per process (per event loop) joins each
instrument's group once, keeps the latest document per instrument, and every
`settings.WS_CONFLATE_MS` sends each client one `updates` frame with the
latest document of every instrument it watches that changed (each document
serialized once per flush, not once per client). A tick costs a dict write; a
client costs at most one frame per interval, and always ends with the latest
state. `WS_CONFLATE_MS=0` selects the naive design (every consumer in every
group, one frame per tick), kept for `bench_fanout` to compare against.

Error codes: `bad_message` (not JSON / not an object / unknown action / bad
symbols list / a NUL or lone surrogate anywhere in the message), `unknown_symbols`, `too_many_instruments` (over
`settings.WS_MAX_INSTRUMENTS`), `rate_limited` (over
`settings.WS_MAX_MESSAGES_PER_SECOND`), `forbidden`. Repeated flooding closes
the socket with code 4429.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

import orjson
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from core.groups import STATUS_GROUP, symbol_group, user_group
from core.storable import unstorable_reason
from marketdata.selectors import instruments_stream_info
from streaming.snapshots import snapshots_get

CLOSE_UNAUTHENTICATED = 4401
CLOSE_ABUSE = 4429
MAX_SYMBOL_LENGTH = 15
# Seconds in a row with excess messages before the socket is closed.
ABUSE_WINDOWS = 3

logger = logging.getLogger(__name__)


class MarketHub:
    """The process's single member of every watched instrument group.

    Clients are spread over `SLOTS` flush slots, flushed in turn every
    `interval / SLOTS`: each client still gets at most one frame per
    interval, but the process sends a quarter of its frames at a time instead
    of one burst (shorter queues in the server and in clients)."""

    SLOTS = 4

    def __init__(self, layer, interval: float) -> None:
        self.layer = layer
        self.interval = interval
        self.channel: str | None = None
        self.members: dict[str, set[MarketConsumer]] = {}
        self.slot_members: list[dict[str, set[MarketConsumer]]] = [
            {} for _ in range(self.SLOTS)
        ]
        self.latest: dict[str, dict] = {}
        self.dirty: list[dict[str, dict]] = [{} for _ in range(self.SLOTS)]
        self.tasks: list[asyncio.Task] = []
        self.lock = asyncio.Lock()
        self.next_slot = 0
        self.frames_sent = 0

    def assign_slot(self) -> int:
        self.next_slot = (self.next_slot + 1) % self.SLOTS
        return self.next_slot

    async def join(self, consumer: MarketConsumer, symbols: list[str]) -> None:
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel("hub.")
                self.tasks = [
                    asyncio.create_task(self._read(self.channel)),
                    asyncio.create_task(self._flush_forever()),
                ]
            slot = self.slot_members[consumer.hub_slot]
            for symbol in symbols:
                members = self.members.get(symbol)
                if members is None:
                    members = self.members[symbol] = set()
                    await self.layer.group_add(symbol_group(symbol), self.channel)
                members.add(consumer)
                slot.setdefault(symbol, set()).add(consumer)

    async def leave(self, consumer: MarketConsumer, symbols) -> None:
        async with self.lock:
            slot = self.slot_members[consumer.hub_slot]
            for symbol in symbols:
                in_slot = slot.get(symbol)
                if in_slot is not None:
                    in_slot.discard(consumer)
                    if not in_slot:
                        del slot[symbol]
                        self.dirty[consumer.hub_slot].pop(symbol, None)
                members = self.members.get(symbol)
                if members is None:
                    continue
                members.discard(consumer)
                if not members:
                    del self.members[symbol]
                    self.latest.pop(symbol, None)
                    await self.layer.group_discard(symbol_group(symbol), self.channel)
            if not self.members and self.channel is not None:
                tasks, self.tasks, self.channel = self.tasks, [], None
                for task in tasks:
                    task.cancel()
                # Let the reader unsubscribe its channel before going on.
                await asyncio.gather(*tasks, return_exceptions=True)

    def latest_doc(self, symbol: str) -> dict | None:
        return self.latest.get(symbol)

    async def _read(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            if message.get("type") != "market.update":
                continue
            snapshot = message.get("snapshot") or {}
            symbol = snapshot.get("symbol")
            if symbol not in self.members:
                continue
            self.latest[symbol] = snapshot
            for slot, members in enumerate(self.slot_members):
                if symbol in members:
                    self.dirty[slot][symbol] = snapshot

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        step = self.interval / self.SLOTS
        slot = 0
        next_at = loop.time()
        while True:
            if self.dirty[slot]:
                try:
                    await self.flush(slot)
                except Exception:  # a bad document must not stop every client
                    logger.exception("market hub flush failed")
            slot = (slot + 1) % self.SLOTS
            next_at = max(next_at + step, loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def flush(self, slot: int) -> None:
        dirty, self.dirty[slot] = self.dirty[slot], {}
        members = self.slot_members[slot]
        batches: dict[MarketConsumer, list[bytes]] = {}
        for symbol, snapshot in dirty.items():
            encoded = orjson.dumps(snapshot)
            for consumer in members.get(symbol, ()):
                batches.setdefault(consumer, []).append(encoded)
        for consumer, docs in batches.items():
            if consumer.closed:
                continue
            frame = b'{"type":"updates","snapshots":[' + b",".join(docs) + b"]}"
            try:
                await consumer.send(text_data=frame.decode())
                self.frames_sent += 1
            except Exception:  # the socket went away mid-flush
                logger.debug("dropping a frame for a closed socket", exc_info=True)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def market_hub(layer) -> MarketHub:
    """The hub of the running event loop (one per Daphne process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = MarketHub(layer, settings.WS_CONFLATE_MS / 1000)
    return hub


class MarketConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        self.symbols: set[str] = set()
        self.hub: MarketHub | None = None
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
        await self.send_json(
            {
                "type": "hello",
                "max_instruments": settings.WS_MAX_INSTRUMENTS,
                "conflate_ms": settings.WS_CONFLATE_MS,
            }
        )

    async def disconnect(self, code) -> None:
        self.closed = True
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
        snapshots = await sync_to_async(snapshots_get)(symbols=wanted)
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

    async def alert_fired(self, event: dict) -> None:
        await self.send_json({"type": "alert", "alert": event.get("alert")})

    async def feed_status(self, event: dict) -> None:
        await self.send_json({"type": "status", "status": event.get("status")})
