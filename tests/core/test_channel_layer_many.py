"""`group_send_many`: the stream worker's updates in one script call reach
every member of each group, in order, and nobody else; keys stored in the same
call are there before the first message arrives (real Redis)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from channels.layers import get_channel_layer
from django.conf import settings
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from core.groups import symbol_group
from core.redis import redis_client
from streaming.snapshots import snapshot_key, snapshots_encoded


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


def test_keys_stored_in_the_same_call_are_there_when_the_message_arrives():
    layer = get_channel_layer()
    parts = urlsplit(settings.REDIS_URL)
    server, db = f"{parts.scheme}://{parts.netloc}", parts.path.strip("/") or "0"
    assert layer.stores_in(settings.REDIS_URL)
    assert not layer.stores_in(f"{server}/{(int(db) + 1) % 16}")
    assert layer.stores_in(server) == (db == "0")  # no number: database 0
    documents = [{"symbol": s, "seq": 7} for s in ("AAPL", "MSFT")]
    redis_client().delete(*(snapshot_key(d["symbol"]) for d in documents))

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(symbol_group("MSFT"), channel)
        await layer.group_send_many(
            [(symbol_group("MSFT"), {"type": "market.update", "seq": 7})],
            store=snapshots_encoded(documents),
        )
        message = await asyncio.wait_for(layer.receive(channel), 5)
        # Read on receipt: a reader woken by the update finds its snapshot.
        stored = redis_client().mget([snapshot_key("AAPL"), snapshot_key("MSFT")])
        await layer.flush()
        return message["seq"], stored

    seq, stored = asyncio.run(scenario())
    assert seq == 7
    assert stored == list(snapshots_encoded(documents).values())


def test_a_redis_that_forgot_the_script_still_gets_the_batch(redis_outage_settings):
    """Redis drops its scripts when it restarts (or on SCRIPT FLUSH): the
    next batch loads the script again on the same call, nothing lost. On a
    private Redis: SCRIPT FLUSH empties the whole server's script cache."""
    layer = get_channel_layer()

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(symbol_group("AAPL"), channel)
        seqs = []
        for seq in (1, 2, 3):
            if seq > 1:
                redis_client().script_flush()
            await layer.group_send_many(
                [(symbol_group("AAPL"), {"type": "market.update", "seq": seq})],
                store={snapshot_key("AAPL"): b"%d" % seq},
            )
            seqs.append((await asyncio.wait_for(layer.receive(channel), 5))["seq"])
        await layer.flush()
        return seqs

    assert asyncio.run(scenario()) == [1, 2, 3]
    assert redis_client().get(snapshot_key("AAPL")) == b"3"


def test_a_large_batch_of_binary_values_arrives_byte_for_byte():
    """The batch travels as one msgpack argument: values that are not text,
    and more of them than one Lua call may take as arguments, arrive intact."""
    layer = get_channel_layer()
    symbols = [f"S{i}" for i in range(1500)]
    store = {snapshot_key(s): bytes(range(256)) + s.encode() for s in symbols}
    payload = bytes(range(255, -1, -1)) * 300  # 76.8 KB, every byte value

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add(symbol_group("S1499"), channel)
        await layer.group_send_many(
            [
                (symbol_group(s), {"type": "market.update", "blob": payload, "n": i})
                for i, s in enumerate(symbols)
            ],
            store=store,
        )
        message = await asyncio.wait_for(layer.receive(channel), 5)
        await layer.flush()
        return message

    message = asyncio.run(scenario())
    assert (message["n"], message["blob"]) == (1499, payload)
    assert redis_client().mget(list(store)) == list(store.values())
    redis_client().delete(*store)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@examples(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), values, max_size=8))
def test_the_fast_encoder_gives_the_layers_own_bytes(message):
    """Where the layer only packs msgpack, `group_send_many` packs with
    msgspec: every message must come out as the layer's `serialize` makes
    it (consumers decode with channels-redis)."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from core.channel_layer import _fast_serialize

    layer = RedisPubSubChannelLayer(hosts=[settings.REDIS_URL])
    fast = _fast_serialize(layer)
    assert fast is not layer.serialize
    assert fast(message) == layer.serialize(message)


def test_an_encrypted_layer_keeps_its_own_serializer():
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from core.channel_layer import _fast_serialize

    layer = RedisPubSubChannelLayer(
        hosts=[settings.REDIS_URL], symmetric_encryption_keys=["k" * 32]
    )
    assert _fast_serialize(layer) == layer.serialize
