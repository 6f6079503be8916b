"""The times each published document carries for the latency budget
(`streaming.publisher`, read by `bench.bench_latency`): when its oldest change
was applied and when the throttle allowed it, so the bench can report the
deliberate hold apart from the worker's own time. Real Redis, real channel
layer."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal as D

from channels.layers import get_channel_layer

from core.groups import symbol_group
from streaming.publisher import Publisher
from streaming.state import InstrumentState


def change(publisher: Publisher, state: InstrumentState, price: str) -> None:
    state.received_at = time.time()
    state.apply_trade(datetime.now(UTC), D(price), D("1"))
    publisher.mark(state)


def test_a_held_update_says_how_long_the_throttle_held_it(instruments):
    aapl = instruments["AAPL"]
    state = InstrumentState(
        symbol="AAPL", instrument_id=aapl.id, asset_class="equity", provider="sim"
    )
    layer = get_channel_layer()
    publisher = Publisher(layer=layer, hz=2)  # 500 ms apart after a burst of 2

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(symbol_group("AAPL"), channel)
        docs = []
        for price in ("1", "2", "3"):
            change(publisher, state, price)
            docs += [m["snapshot"] for m in await publish(channel)]
        while len(docs) < 3:
            await asyncio.sleep(0.01)
            docs += [m["snapshot"] for m in await publish(channel)]
        return docs

    async def publish(channel):
        if not await publisher.publish_due():
            return []
        return [await asyncio.wait_for(layer.receive(channel), 5)]

    first, second, held = asyncio.run(scenario())
    publisher.close()
    for doc in (first, second, held):
        assert doc["pending_since"] <= doc["normalized_at"] <= doc["published_at"]
    # Within the burst: allowed before the change was applied, no hold.
    assert first["due_at"] <= first["normalized_at"]
    assert second["due_at"] <= second["normalized_at"]
    # The third waited for the rate: one interval after the first send.
    hold = held["due_at"] - held["normalized_at"]
    assert 0.5 - (held["normalized_at"] - first["published_at"]) - 0.01 < hold
    assert hold <= 0.5
    assert held["due_at"] <= held["published_at"]
    assert held["last"] == "3"
