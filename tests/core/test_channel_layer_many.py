"""`group_send_many`: the stream worker's updates in one pipelined round trip
reach every member of each group, in order, and nobody else (real Redis)."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer

from core.groups import symbol_group


def test_group_send_many_delivers_each_group_its_messages_in_order():
    async def scenario():
        layer = get_channel_layer()
        apple, both, other = [await layer.new_channel() for _ in range(3)]
        for channel, symbols in ((apple, ["AAPL"]), (both, ["AAPL", "MSFT"])):
            for symbol in symbols:
                await layer.group_add(symbol_group(symbol), channel)
        await layer.group_add(symbol_group("TSLA"), other)
        messages = [
            (symbol_group(symbol), {"type": "market.update", "seq": seq})
            for symbol, seq in (("AAPL", 1), ("MSFT", 1), ("AAPL", 2), ("AAPL", 3))
        ]
        await layer.group_send_many(messages)

        async def take(channel, n):
            return [
                (await asyncio.wait_for(layer.receive(channel), 5))["seq"]
                for _ in range(n)
            ]

        assert await take(apple, 3) == [1, 2, 3]
        assert sorted(await take(both, 4)) == [1, 1, 2, 3]
        try:
            await asyncio.wait_for(layer.receive(other), 0.5)
        except TimeoutError:
            pass
        else:
            raise AssertionError("a channel outside the groups got a message")
        await layer.flush()

    asyncio.run(scenario())
