"""The per-process parts behind the browser WebSockets (`streaming.consumers`).

`MarketHub`, fan-out and conflation: the consumers of one process do not each
join the instrument groups. One hub per process (per event loop) joins each
instrument's group once, keeps the latest document per instrument, and sends
each client `updates` frames with the latest document of every instrument it
watches that changed (each document serialized once per flush, not once per
client). Conflation only under backpressure: the process has a frame budget
(`FRAMES_PER_SECOND`, a token bucket: a Daphne process keeps p99 under 100 ms
up to about 5,000 frames/s, see the performance facts). While the budget has
frames left, an update goes to its clients on the next loop turn, at most
once per display frame per client; once it is spent, later updates are
conflated into one frame sent when the budget has refilled, never later than
`settings.WS_CONFLATE_MS` after the client's last frame. So every client
gets each change within a display frame while the process is within its
budget, and many clients are conflated just enough to keep it there. A tick
costs a dict write; a client costs at most one frame per display frame, and
always ends with the latest state. Market anomalies (`market.anomaly`, `streaming.anomaly_watch`) are
rare and go to the instrument's watchers at once as an `anomaly` frame. `WS_CONFLATE_MS=0`
selects the naive design (every consumer in every group, one frame per tick),
kept for `bench_fanout` to compare against.

Each frame carries `sent_at` (epoch seconds when the hub sent it) and each
document `hub_at` (when the hub read it from the channel layer) beside the
worker's times (`ts`, `received_at`, ..., `published_at`, see
`streaming.publisher`): `bench.bench_latency` reads the stages from them.

`FeedWatch`: whether the live feed store (Redis: the channel layer and the
snapshots) answers, as far as the process knows, checked once a second while a
socket is open; each socket is told when it goes away and when it comes back.
While it is away the layer (`core.channel_layer`) keeps the hub's and the
consumers' subscriptions and makes them when Redis answers, so frames flow
again without a reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from core.groups import symbol_group
from core.logs import RateLimitedLog
from core.redis import redis_outage, redis_reachable

if TYPE_CHECKING:
    from streaming.consumers import MarketConsumer

logger = logging.getLogger(__name__)
failures = RateLimitedLog(logger)

FEED_UNAVAILABLE = (
    "Live prices are unavailable: the live feed store is not reachable; "
    "showing stored data."
)


class MarketHub:
    """The process's single member of every watched instrument group.

    Clients are spread over `SLOTS` flush slots, each with its own leading
    edge: a slot flushes on the next loop turn after an update arrives (so a
    burst read at once goes out in one frame) when it sent nothing in the
    last display frame and the budget has a frame left; otherwise when both
    allow, or `max_interval` after its last flush at the latest. A busy
    process sends a quarter of its frames at a time instead of one burst
    (shorter queues in the server and in clients)."""

    SLOTS = 4
    FRAMES_PER_SECOND = 4000.0  # the process's budget, below its ~5,000 limit
    MIN_INTERVAL = 1 / 60  # a browser shows at most one change per frame

    def __init__(self, layer, interval: float) -> None:
        self.layer = layer
        self.max_interval = interval
        self.consumers: set[MarketConsumer] = set()
        self.channel: str | None = None
        self.members: dict[str, set[MarketConsumer]] = {}
        self.slot_members: list[dict[str, set[MarketConsumer]]] = [
            {} for _ in range(self.SLOTS)
        ]
        self.latest: dict[str, dict] = {}
        self.dirty: list[dict[str, dict]] = [{} for _ in range(self.SLOTS)]
        self.last_flush: list[float] = [float("-inf")] * self.SLOTS
        self.timers: list[asyncio.TimerHandle | None] = [None] * self.SLOTS
        self.flushing: set[asyncio.Task] = set()
        self.reader: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        self.next_slot = 0
        self.frames_sent = 0
        # The token bucket: frames the process may send now (negative: owed),
        # as of `budget_at` (loop time); it holds one longest interval's worth.
        self.budget_cap = max(1.0, self.FRAMES_PER_SECOND * interval)
        self.budget = self.budget_cap
        self.budget_at = float("-inf")

    def _budget_now(self, now: float) -> float:
        refill = (now - self.budget_at) * self.FRAMES_PER_SECOND
        self.budget = min(self.budget_cap, self.budget + refill)
        self.budget_at = now
        return self.budget

    def assign_slot(self) -> int:
        self.next_slot = (self.next_slot + 1) % self.SLOTS
        return self.next_slot

    async def join(self, consumer: MarketConsumer, symbols: list[str]) -> None:
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel("hub.")
                self.reader = asyncio.create_task(self._read(self.channel))
            slot = self.slot_members[consumer.hub_slot]
            if symbols:
                self.consumers.add(consumer)
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
            if not any(consumer in members for members in slot.values()):
                self.consumers.discard(consumer)
            if not self.members and self.channel is not None:
                await self._stop()

    async def _stop(self) -> None:
        tasks = [*self.flushing, *([self.reader] if self.reader else [])]
        self.reader, self.channel = None, None
        for index, timer in enumerate(self.timers):
            if timer is not None:
                timer.cancel()
                self.timers[index] = None
        for task in tasks:
            task.cancel()
        # Let the reader unsubscribe its channel before going on.
        await asyncio.gather(*tasks, return_exceptions=True)

    def latest_doc(self, symbol: str) -> dict | None:
        return self.latest.get(symbol)

    async def _read(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            if message.get("type") == "market.anomaly":
                await self._anomaly(message.get("anomaly") or {})
                continue
            if message.get("type") != "market.update":
                continue
            snapshot = message.get("snapshot") or {}
            symbol = snapshot.get("symbol")
            if symbol not in self.members:
                continue
            snapshot["hub_at"] = time.time()
            self.latest[symbol] = snapshot
            for slot, members in enumerate(self.slot_members):
                if symbol in members:
                    self.dirty[slot][symbol] = snapshot
                    if self.timers[slot] is None:
                        self._schedule(slot)

    async def _anomaly(self, anomaly: dict) -> None:
        """A market anomaly (rare: at most a few per instrument and minute)
        goes to the instrument's watchers at once, not conflated."""
        members = self.members.get(anomaly.get("symbol"))
        if not members:
            return
        frame = orjson.dumps({"type": "anomaly", "anomaly": anomaly}).decode()
        for consumer in list(members):
            if consumer.closed:
                continue
            try:
                await consumer.send(text_data=frame)
            except Exception:  # the socket went away meanwhile
                logger.debug("dropping an anomaly for a closed socket", exc_info=True)

    def _schedule(self, slot: int) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        last = self.last_flush[slot]
        owed = 1.0 - self._budget_now(now)  # frames short of sending one
        refilled = now + max(0.0, owed) / self.FRAMES_PER_SECOND
        at = min(max(last + self.MIN_INTERVAL, refilled), last + self.max_interval)
        self.timers[slot] = loop.call_later(max(0.0, at - now), self._due, slot)

    def _due(self, slot: int) -> None:
        self.timers[slot] = None
        if not self.dirty[slot]:
            return
        self.last_flush[slot] = asyncio.get_running_loop().time()
        task = asyncio.create_task(self._flush_logged(slot))
        self.flushing.add(task)
        task.add_done_callback(self.flushing.discard)

    async def _flush_logged(self, slot: int) -> None:
        try:
            await self.flush(slot)
        except Exception as exc:  # a bad document must not stop every client
            failures.error("flush", "market hub flush failed", exc=exc)
        if self.dirty[slot] and self.timers[slot] is None:
            self._schedule(slot)  # arrived while sending: the next edge

    async def flush(self, slot: int) -> None:
        dirty, self.dirty[slot] = self.dirty[slot], {}
        members = self.slot_members[slot]
        batches: dict[MarketConsumer, list[bytes]] = {}
        for symbol, snapshot in dirty.items():
            encoded = orjson.dumps(snapshot)
            for consumer in members.get(symbol, ()):
                batches.setdefault(consumer, []).append(encoded)
        head = b'{"type":"updates","sent_at":%.6f,"snapshots":[' % time.time()
        for consumer, docs in batches.items():
            if consumer.closed:
                continue
            frame = head + b",".join(docs) + b"]}"
            try:
                await consumer.send(text_data=frame.decode())
                self.frames_sent += 1
            except Exception:  # the socket went away mid-flush
                logger.debug("dropping a frame for a closed socket", exc_info=True)
        # Spent; owing at most one full bucket, so a burst is repaid in time.
        budget = self._budget_now(asyncio.get_running_loop().time()) - len(batches)
        self.budget = max(-self.budget_cap, budget)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def market_hub(layer) -> MarketHub:
    """The hub of the running event loop (one per Daphne process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = MarketHub(layer, settings.WS_CONFLATE_MS / 1000)
    return hub


class FeedWatch:
    """Tells the sockets of one process when the live feed store goes away
    and when it answers again."""

    INTERVAL = 1.0

    def __init__(self, layer) -> None:
        self.layer = layer
        self.clients: set[MarketConsumer] = set()
        self.available = True
        self.task: asyncio.Task | None = None

    def add(self, consumer: MarketConsumer) -> None:
        self.clients.add(consumer)
        if self.task is None:
            self.task = asyncio.create_task(self._watch())

    def discard(self, consumer: MarketConsumer) -> None:
        self.clients.discard(consumer)
        if not self.clients and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.INTERVAL)
            try:
                await self.check()
            except Exception as exc:  # one bad socket must not stop the others
                failures.error("feed-watch", "feed watch failed", exc=exc)
            else:
                failures.recovered("feed-watch", "feed watch works again")

    async def check(self) -> bool:
        """Look again; on a change tell every socket. Returns whether it changed."""
        available = getattr(self.layer, "available", True)
        if redis_outage().down:  # probed (PING) at most once a second
            reachable = await sync_to_async(redis_reachable, thread_sensitive=False)()
            available = available and reachable
        if available == self.available:
            return False
        self.available = available
        for consumer in list(self.clients):
            await consumer.send_feed(available=available)
        return True


_watches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def feed_watch(layer) -> FeedWatch:
    """The feed watch of the running event loop (one per Daphne process)."""
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = FeedWatch(layer)
    return watch
