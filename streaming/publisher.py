"""Publishing instrument updates into the channel layer, coalesced.

Contract for consumers (`streaming.consumers`, the dashboard):

* Group `core.groups.symbol_group(symbol)` receives
  `{"type": "market.update", "snapshot": <document>}` where the document is the
  snapshot described in `streaming.snapshots` (also stored in Redis under
  `snap:<symbol>` before the send, so a reader never sees Redis behind the
  group). At most `settings.STREAM_PUBLISH_HZ` messages per second per
  instrument on average (a generic cell rate: `BURST` messages may go back to
  back after a quiet period): a change goes out at once while the instrument
  is within its rate, so one that ticks slowly is never held; later changes
  are coalesced into one message carrying the latest state when the rate
  allows the next. An update whose slot comes within `EARLY` of an interval
  goes out with the batch being sent now rather than alone a few ms later:
  the average rate is unchanged, and the worker pays one snapshot write and
  one channel-layer round trip per batch rather than per instrument (the
  fixed cost that dominated its CPU, bench/PROFILE-ingest.md). Each document
  carries the epoch times of its way through the worker (`bench.bench_latency`
  reads the stages from them): `ts` and `received_at`, the newest event's time
  and its receive time; `pending_since` and `normalized_at`, the receive time
  of the oldest change it carries and when the loop applied that change;
  `due_at`, when the rate allowed the message from (past `normalized_at` by
  the throttle's hold); `published_at`, when the publisher took it (then
  Redis: the snapshot, the send). `snapshot["seq"]` increases by
  exactly 1 per published message per instrument (it continues from the stored
  snapshot across worker restarts), so a gap in `seq` means a lost message.
* Group `core.groups.STATUS_GROUP` receives `{"type": "feed.status",
  "status": <streaming.selectors.feed_status_get() document>}` every 2 s
  (sent by the worker's health step).

All sends happen on the worker's single asyncio event loop, on
`RedisPubSubChannelLayer`, never through `async_to_sync` per event. When the
channel layer is the snapshots' Redis (one server, the same database: the
default), a batch's snapshots and updates go in one script call on the loop
(`core.channel_layer`: every key is set before the first PUBLISH), bounded by
`SEND_TIMEOUT`; a failure leaves the whole batch dirty for the next try.
Otherwise, and for the health documents, the synchronous Redis calls run on
one thread of the publisher's own, never on the loop: a Redis that stalls
mid-reply holds that thread (up to the client's 2 s socket timeout), not the
feed. The worker does not wait for a publish to ingest (`StreamWorker`
starts one at a time beside its ingest loop).

Redis outages (see `core.outage`): the publisher is the worker's only
Redis-facing part on the loop (snapshots, the channel layer, the health
report), and shares the process's `core.redis.redis_outage()`. While Redis is
away it tries at most once a second: updates wait in `dirty` (the latest state
per instrument, so memory stays bounded by the instruments streamed) and go
out when it answers, health reports are skipped. When Redis answers again every
instrument is published once more, so a Redis that restarted empty gets every
snapshot back without waiting for each instrument's next tick.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from core.groups import STATUS_GROUP, symbol_group
from core.outage import Outage
from core.redis import REDIS_ERRORS, redis_outage
from streaming.selectors import feed_status_get
from streaming.services import feed_health_put
from streaming.snapshots import snapshot_key, snapshots_encoded, snapshots_put

MARKET_UPDATE = "market.update"
FEED_STATUS = "feed.status"
# Messages an instrument may send back to back after a quiet period.
BURST = 2
# An update due within this fraction of an interval joins the current batch:
# at most 2 / interval batches a second (20 at 10 Hz), so each browser client
# gets at most that many frames from a worker, and the hub's frame budget
# stays unspent at 100 clients (bench/PROFILE-latency.md).
EARLY = 0.5
# Longest wait for one batch's store-and-send call (as the snapshot client's
# socket timeout): a Redis that hangs mid-reply is an outage, not a stall.
SEND_TIMEOUT = 2.0
IMPACT = (
    "Live updates wait (the latest state of each instrument goes out when it "
    "answers) and health reports are skipped; bars are still stored in PostgreSQL"
)


class Publisher:
    def __init__(self, *, layer, hz: float, outage: Outage | None = None) -> None:
        self.layer = layer
        self.interval = 1.0 / hz if hz > 0 else 0.0
        self.dirty: dict[str, object] = {}
        # Per instrument: the time its sends so far would end at the full
        # rate (the generic cell rate algorithm's TAT).
        self.tat: dict[str, float] = {}
        # Per dirty instrument: (receive time, time applied) of its oldest
        # change since the last message.
        self.pending: dict[str, tuple[float | None, float]] = {}
        # Per instrument taken to send: when its rate allowed it (monotonic).
        self.allowed: dict[str, float] = {}
        self.names: dict[str, tuple[str, str]] = {}  # symbol -> group, key
        # The earliest slot among dirty instruments (None: not known): the
        # worker asks after every frame, and most frames dirty no new one.
        self._earliest: float | None = None
        self.published = 0
        self.failures = 0
        self.redis = outage or redis_outage()
        # Every instrument published (weakly: the worker drops removed ones),
        # to publish them all again when Redis comes back.
        self.known: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._redis_thread = ThreadPoolExecutor(1, thread_name_prefix="stream-redis")
        # Snapshots and updates in one call (see the module's docstring).
        stores_in = getattr(layer, "stores_in", None)
        self.together = stores_in is not None and stores_in(settings.REDIS_URL)

    async def _off_loop(self, function, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._redis_thread, lambda: function(**kwargs)
        )

    def close(self) -> None:
        self._redis_thread.shutdown(wait=False, cancel_futures=True)

    def mark(self, state) -> None:
        symbol = state.symbol
        if symbol not in self.dirty:  # the oldest change the next message carries
            self.pending[symbol] = (state.received_at, time.time())
            earliest = self._earliest
            if earliest is not None:
                self._earliest = min(earliest, self.tat.get(symbol, 0.0))
        self.dirty[symbol] = state

    def forget(self, symbol: str) -> None:
        """An instrument no longer streamed: nothing of it is sent."""
        self.dirty.pop(symbol, None)
        self.pending.pop(symbol, None)
        self._earliest = None

    def next_due(self) -> float | None:
        """Monotonic time at which the earliest held-back update is due."""
        if not self.dirty:
            return None
        earliest = self._earliest
        if earliest is None:
            tat = self.tat
            earliest = self._earliest = min(tat.get(s, 0.0) for s in self.dirty)
        due = earliest - self._slack()
        if self.redis.down:  # no busy loop while nothing may be tried
            due = max(due, self.redis.retry_at)
        return due

    def _slack(self) -> float:
        return (BURST - 1) * self.interval

    def take_due(self, now: float) -> list:
        """Updates to send now: none until one is due, then with it every one
        due within `EARLY` of an interval (one batch, not one send each)."""
        self._earliest = None  # what stays dirty is looked at again
        interval, tat = self.interval, self.tat
        if interval == 0.0:
            due = list(self.dirty.values())
        else:
            strict = now + self._slack()
            early = strict + EARLY * interval
            due, any_due = [], False
            for symbol, state in self.dirty.items():
                slot = tat.get(symbol, -1e9)
                if slot <= early:
                    due.append(state)
                    any_due = any_due or slot <= strict
            if not any_due:
                return []
        for state in due:
            del self.dirty[state.symbol]
            previous = tat.get(state.symbol, now)
            self.allowed[state.symbol] = previous - self._slack()  # due_at
            # Theoretical arrival time: one interval per message sent.
            tat[state.symbol] = max(previous, now) + interval
        return due

    async def publish_due(self, now: float | None = None) -> int:
        """Send every instrument whose interval has passed; returns how many."""
        if self.dirty and not self.redis.should_try():
            return 0  # Redis is away: the states stay dirty
        now = time.monotonic() if now is None else now
        due = self.take_due(now)
        if not due:
            return 0
        documents = []
        published_at = time.time()
        pending, allowed = self.pending, self.allowed
        for state in due:
            state.seq += 1
            document = state.document()
            # Taken now: a change marked while this batch is on its way is
            # the oldest of the next message.
            received, applied = pending.pop(state.symbol, (None, None))
            document["pending_since"] = received
            document["normalized_at"] = applied
            # Epoch time from which the rate allowed this message.
            since = now - allowed.pop(state.symbol, now)
            document["due_at"] = published_at - max(0.0, since)
            document["published_at"] = published_at
            documents.append(document)
        attempted_at = self.redis.clock()
        try:
            if self.together:
                # A timeout, not `wait_for`: no task per batch.
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self.layer.group_send_many(
                        self._messages(documents),
                        store=snapshots_encoded(documents, self._key),
                    )
            else:
                await self._off_loop(snapshots_put, snapshots=documents)
        except (*REDIS_ERRORS, TimeoutError) as exc:
            self.failures += 1
            self._earliest = None
            for state, document in zip(due, documents, strict=True):
                state.seq -= 1  # unpublished: keep seq gap-free and send later
                self.dirty.setdefault(state.symbol, state)
                pending[state.symbol] = (
                    document["pending_since"],
                    document["normalized_at"],
                )
            doing = "publishing live updates" if self.together else "storing snapshots"
            self.redis.failed(exc, doing=doing, impact=IMPACT)
            return 0
        self._answered(published=due, attempted_at=attempted_at)
        if self.together:
            self.published += len(documents)
        else:
            await self.send_documents(documents)
        return len(documents)

    def _answered(self, *, published=(), attempted_at: float | None = None) -> None:
        known = self.known
        for state in published:
            if state.symbol not in known:
                known[state.symbol] = state
        if self.redis.succeeded(attempted_at=attempted_at):
            sent = {state.symbol for state in published}
            self._earliest = None
            for symbol, state in list(known.items()):
                if symbol not in sent:
                    self.dirty.setdefault(symbol, state)

    def _names(self, symbol: str) -> tuple[str, str]:
        """The instrument's group and snapshot key (formatted once)."""
        names = self.names.get(symbol)
        if names is None:
            names = self.names[symbol] = (symbol_group(symbol), snapshot_key(symbol))
        return names

    def _messages(self, documents: list[dict]) -> list[tuple[str, dict]]:
        names = self._names
        return [
            (names(d["symbol"])[0], {"type": MARKET_UPDATE, "snapshot": d})
            for d in documents
        ]

    def _key(self, symbol: str) -> str:
        return self._names(symbol)[1]

    async def send_documents(self, documents: list[dict]) -> None:
        messages = self._messages(documents)
        send_many = getattr(self.layer, "group_send_many", None)
        if send_many is not None:  # one pipelined round trip (core.channel_layer)
            try:
                await send_many(messages)
            except Exception as exc:  # counted, reported below
                self.failures += len(messages)
                self.redis.failed(exc, doing="sending live updates", impact=IMPACT)
            else:
                self.published += len(messages)
            return
        results = await asyncio.gather(
            *(self.layer.group_send(g, m) for g, m in messages), return_exceptions=True
        )
        error = None
        for result in results:
            if isinstance(result, BaseException):
                self.failures += 1
                error = result
            else:
                self.published += 1
        if error is not None:
            self.redis.failed(error, doing="sending live updates", impact=IMPACT)

    async def report_health(self, *, worker_id: str, document: dict) -> None:
        """Store the worker's health document and send every worker's merged
        status to the status group (skipped while Redis is away)."""
        if not self.redis.should_try():
            self.redis.skipped("health reports")
            return
        try:
            await self._off_loop(
                feed_health_put, worker_id=worker_id, document=document
            )
            status = await self._off_loop(feed_status_get)
        except REDIS_ERRORS as exc:
            self.failures += 1
            self.redis.failed(exc, doing="storing the health report", impact=IMPACT)
            return
        self._answered()
        await self.send_status(status)

    async def send_status(self, status: dict) -> None:
        try:
            await self.layer.group_send(
                STATUS_GROUP, {"type": FEED_STATUS, "status": status}
            )
        except REDIS_ERRORS as exc:
            self.failures += 1
            self.redis.failed(exc, doing="sending the feed status", impact=IMPACT)
