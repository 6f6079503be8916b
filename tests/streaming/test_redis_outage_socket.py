"""The browser WebSocket through a Redis outage: the real ASGI stack on the
channel layer of a private Redis (tests.plugins.private_redis) that is killed
and started again under it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.layers import get_channel_layer

from core.groups import symbol_group
from tests.streaming.test_consumers import (
    open_socket,
    receive_until,
    run,
    snapshot,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def publish_until_received(ws, symbol: str, seq: int, timeout: float = 10):
    """Publish an update the way the stream worker does until the socket gets
    it (the first may race the layer's resubscription); returns the frame."""
    layer = get_channel_layer()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await layer.group_send(
            symbol_group(symbol),
            {"type": "market.update", "snapshot": snapshot(symbol, seq, "190.00")},
        )
        try:
            return await receive_until(ws, "updates", timeout=0.5)
        except TimeoutError:
            if asyncio.get_running_loop().time() > deadline:
                raise


def test_a_socket_opened_while_redis_is_down_is_told_and_recovers_by_itself(
    redis_outage_settings, user, instruments, caplog
):
    redis = redis_outage_settings
    redis.stop()
    caplog.set_level(logging.INFO)

    async def scenario():
        ws = await open_socket(user)  # the handshake succeeds: no HTTP 500
        feed = await receive_until(ws, "feed")
        assert feed["available"] is False
        assert "live feed store is not reachable" in feed["message"]
        other = await open_socket(user)  # a page closed during the outage
        await receive_until(other, "feed")
        await other.disconnect()
        await ws.send_json_to({"action": "subscribe", "symbols": ["AAPL"]})
        first = await receive_until(ws, "snapshot")
        assert first["snapshots"] == [] and first["missing"] == ["AAPL"]

        await asyncio.to_thread(redis.start)
        back = await receive_until(ws, "feed", timeout=10)
        assert back == {"type": "feed", "available": True}
        # The subscriptions made during the outage now exist: frames flow.
        frame = await publish_until_received(ws, "AAPL", seq=8)
        assert frame["snapshots"][0]["seq"] == 8
        await ws.disconnect()

    run(scenario)
    # One outage, one line each way; no traceback.
    lines = [r.getMessage() for r in caplog.records if r.name == "core.redis"]
    assert len(lines) == 2, lines
    assert "is unreachable" in lines[0] and "reachable again" in lines[1]
    assert not [r for r in caplog.records if r.exc_info]


def test_an_open_socket_is_told_when_redis_goes_and_gets_frames_when_it_returns(
    redis_outage_settings, user, instruments
):
    redis = redis_outage_settings

    async def scenario():
        ws = await watching_aapl(user)

        await asyncio.to_thread(redis.stop)
        gone = await receive_until(ws, "feed", timeout=10)
        assert gone["available"] is False
        await asyncio.to_thread(redis.start)  # empty, as after a restart
        back = await receive_until(ws, "feed", timeout=10)
        assert back["available"] is True
        frame = await publish_until_received(ws, "AAPL", seq=2)
        assert frame["snapshots"][0]["seq"] == 2
        await ws.disconnect()

    run(scenario)


async def watching_aapl(user):
    """A socket subscribed to AAPL that has received its first update."""
    ws = await open_socket(user)
    await ws.send_json_to({"action": "subscribe", "symbols": ["AAPL"]})
    await receive_until(ws, "snapshot")
    await publish_until_received(ws, "AAPL", seq=1)
    return ws


async def answered_again(ws, outage, seq: int) -> None:
    """After a hang: updates reach the socket again and a snapshot read ends
    the outage."""
    from streaming.snapshots import snapshots_get_safe

    await publish_until_received(ws, "AAPL", seq=seq)
    await asyncio.to_thread(snapshots_get_safe, symbols=["AAPL"])
    assert not outage.down
    await ws.disconnect()


def run_as_one_outage(scenario, caplog) -> None:
    """Run `scenario`; Redis's log must hold one outage, one line each way."""
    with caplog.at_level(logging.INFO, logger="core.redis"):
        run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "core.redis"]
    assert sum("is unreachable" in line for line in lines) == 1, lines
    assert sum("reachable again" in line for line in lines) == 1, lines


def test_a_hung_redis_stays_one_outage_while_live_updates_are_quiet(
    redis_outage_settings, user, instruments, caplog
):
    """A hung server keeps its sockets open: the live-updates connection
    only hears silence. Silence is not an answer: the outage the snapshot
    reads found stays one outage (one line, no "reachable again") until the
    server answers again."""
    from core.redis import redis_outage
    from streaming.snapshots import snapshots_get_safe

    redis = redis_outage_settings
    outage = redis_outage()

    async def scenario():
        ws = await watching_aapl(user)

        redis.freeze()
        try:
            for _ in range(3):  # each read waits out the client's timeout
                assert (
                    await asyncio.to_thread(snapshots_get_safe, symbols=["AAPL"])
                    is None
                )
                await asyncio.sleep(outage.retry_every)
                assert outage.down
        finally:
            redis.thaw()
        await answered_again(ws, outage, seq=2)

    run_as_one_outage(scenario, caplog)


def test_an_update_read_after_redis_hung_does_not_end_the_outage(
    redis_outage_settings, user, instruments, caplog
):
    """An update Redis sent just before it hung can still be in the socket
    when a snapshot read finds the outage. Reading it proves nothing about
    now: the outage stays one outage (the update is still delivered) until
    Redis answers a question asked during it."""
    import json
    import time

    import redis as redis_py

    from core.redis import redis_outage
    from streaming.snapshots import snapshots_get_safe

    redis = redis_outage_settings
    outage = redis_outage()

    async def scenario():
        ws = await watching_aapl(user)

        # With the loop held, so the receive task cannot read it: an update
        # reaches the socket, then Redis hangs and a snapshot read fails.
        loop_layer = get_channel_layer()._get_layer()
        channel = loop_layer._get_group_channel_name(symbol_group("AAPL"))
        message = {"type": "market.update", "snapshot": snapshot("AAPL", 2, "191.00")}
        with redis_py.Redis.from_url(redis.url(0)) as direct:
            direct.publish(channel, loop_layer._serialize(message))
        time.sleep(0.3)
        redis.freeze()
        try:
            assert snapshots_get_safe(symbols=["AAPL"]) is None
            assert outage.down
            frame = await receive_until(ws, "updates")  # delivered all the same
            assert '"seq": 2' in json.dumps(frame), frame
            await asyncio.sleep(2 * outage.retry_every)
            assert outage.down, "an update sent before the hang ended the outage"
        finally:
            redis.thaw()
        await answered_again(ws, outage, seq=3)

    run_as_one_outage(scenario, caplog)
