"""Publishing instrument updates into the channel layer, coalesced.

Contract for consumers (`streaming.consumers`, the dashboard):

* Group `core.groups.symbol_group(symbol)` receives
  `{"type": "market.update", "snapshot": <document>}` where the document is the
  snapshot described in `streaming.snapshots` (also stored in Redis under
  `snap:<symbol>` before the send, so a reader never sees Redis behind the
  group). At most `settings.STREAM_PUBLISH_HZ` messages per second per
  instrument: the first change after a quiet period goes out at once, later
  changes within the interval are coalesced into one message carrying the
  latest state at the end of the interval. `snapshot["seq"]` increases by
  exactly 1 per published message per instrument (it continues from the stored
  snapshot across worker restarts), so a gap in `seq` means a lost message.
* Group `core.groups.STATUS_GROUP` receives `{"type": "feed.status",
  "status": <streaming.selectors.feed_status_get() document>}` every 2 s
  (sent by the worker's health step).

All sends happen on the worker's single asyncio event loop, on
`RedisPubSubChannelLayer`, never through `async_to_sync` per event.
"""

from __future__ import annotations

import asyncio
import logging
import time

from core.groups import STATUS_GROUP, symbol_group
from streaming.snapshots import snapshots_put

logger = logging.getLogger("streaming.publisher")

MARKET_UPDATE = "market.update"
FEED_STATUS = "feed.status"


class Publisher:
    def __init__(self, *, layer, hz: float) -> None:
        self.layer = layer
        self.interval = 1.0 / hz if hz > 0 else 0.0
        self.dirty: dict[str, object] = {}
        self.last_sent: dict[str, float] = {}
        self.groups: dict[str, str] = {}
        self.published = 0
        self.failures = 0

    def mark(self, state) -> None:
        self.dirty[state.symbol] = state

    def next_due(self) -> float | None:
        """Monotonic time at which the earliest held-back update is due."""
        if not self.dirty:
            return None
        interval, last_sent = self.interval, self.last_sent
        return min(last_sent.get(s, 0.0) + interval for s in self.dirty)

    def take_due(self, now: float) -> list:
        interval, last_sent = self.interval, self.last_sent
        due = [
            state
            for symbol, state in self.dirty.items()
            if now - last_sent.get(symbol, -1e9) >= interval
        ]
        for state in due:
            del self.dirty[state.symbol]
            last_sent[state.symbol] = now
        return due

    async def publish_due(self, now: float | None = None) -> int:
        """Send every instrument whose interval has passed; returns how many."""
        due = self.take_due(time.monotonic() if now is None else now)
        if not due:
            return 0
        documents = []
        for state in due:
            state.seq += 1
            documents.append(state.document())
        try:
            snapshots_put(snapshots=documents)
        except Exception as exc:  # noqa: BLE001 - Redis down: keep the feed going
            self.failures += 1
            logger.warning("storing snapshots failed: %s", exc)
        await self.send_documents(documents)
        return len(documents)

    async def send_documents(self, documents: list[dict]) -> None:
        sends = []
        for document in documents:
            symbol = document["symbol"]
            group = self.groups.get(symbol)
            if group is None:
                group = self.groups[symbol] = symbol_group(symbol)
            sends.append(
                self.layer.group_send(
                    group, {"type": MARKET_UPDATE, "snapshot": document}
                )
            )
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                self.failures += 1
                logger.warning("channel-layer send failed: %s", result)
            else:
                self.published += 1

    async def send_status(self, status: dict) -> None:
        try:
            await self.layer.group_send(
                STATUS_GROUP, {"type": FEED_STATUS, "status": status}
            )
        except Exception as exc:  # noqa: BLE001 - Redis down: keep the feed going
            self.failures += 1
            logger.warning("status send failed: %s", exc)
