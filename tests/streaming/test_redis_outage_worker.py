"""The stream worker through a Redis outage: a private Redis is killed under
it while it streams from the simulator and stores bars in PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time

import pytest

from marketdata.models import Bar
from marketdata.services import watchlist_create
from streaming.snapshots import snapshots_get
from tests.integration.test_stream_worker import WorkerThread, wait_for
from tests.streaming.helpers import NOW, trade

pytestmark = [pytest.mark.integration, pytest.mark.transactional]


@pytest.fixture
def sim(simulator_settings, settings):
    settings.TAPELINE_CRYPTO_PROVIDER = ""
    return simulator_settings


def live_bars() -> int:
    return Bar.objects.filter(timeframe="1m", origin="live").count()


def test_a_redis_outage_logs_one_line_each_way_and_bars_keep_being_stored(
    sim, redis_outage_settings, user, instruments, caplog
):
    redis = redis_outage_settings
    caplog.set_level(logging.INFO)
    watchlist_create(owner=user, name="Mine", symbols=["BTC/USD", "AAPL"])
    sim.clock.set(speed=30.0)  # a minute closes every 2 s
    with WorkerThread() as worker:
        wait_for(lambda: live_bars() >= 2 and snapshots_get(symbols=["AAPL"]), 30)
        outage_from = len(caplog.records)
        stored_before = live_bars()
        redis.stop()
        # 4 more minutes for each instrument: ~8 s of outage.
        wait_for(lambda: live_bars() >= stored_before + 8, 40)
        stored_during = live_bars() - stored_before
        redis.start()
        ended = wait_for(
            lambda: [
                r
                for r in caplog.records[outage_from:]
                if "reachable again" in r.getMessage()
            ],
            20,
        )
        # Back by itself: snapshots reappear in the restarted (empty) Redis.
        wait_for(lambda: len(snapshots_get(symbols=["AAPL", "BTC/USD"])) == 2, 10)
        assert worker.ready and not worker.shutdown
    records = caplog.records[outage_from:]
    loud = [r for r in records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert "Redis" in loud[0].getMessage()
    assert not [r for r in records if r.exc_info], "no tracebacks"
    assert len(ended) == 1
    assert re.search(r"after \d+(\.\d+)? s", ended[0].getMessage())
    assert stored_during >= 8


def test_the_feed_is_applied_while_a_publish_hangs(
    sim, redis_outage_settings, user, instruments
):
    """SIGSTOP: Redis never answers, so the next publish hangs until
    `SEND_TIMEOUT`. The worker keeps applying the feed meanwhile (bars,
    alerts and the states the next update carries do not wait for Redis)."""
    redis = redis_outage_settings
    watchlist_create(owner=user, name="Mine", symbols=["BTC/USD", "AAPL"])
    with WorkerThread() as worker:
        wait_for(lambda: snapshots_get(symbols=["AAPL"]), 30)
        publisher = worker.publisher
        os.kill(redis.process.pid, signal.SIGSTOP)
        try:
            time.sleep(0.5)  # a publish has started since, and hangs
            failures, events = publisher.failures, worker.events_total
            wait_for(
                lambda: worker.events_total > events or publisher.failures > failures,
                30,
            )
            assert publisher.failures == failures, "the feed waited for Redis"
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)


def test_updates_wait_for_redis_and_every_snapshot_comes_back_after_a_restart(
    redis_outage_settings, instruments, make_worker, attach
):
    redis = redis_outage_settings
    worker, connection = make_worker()
    aapl = attach(worker, instruments["AAPL"], connection)
    msft = attach(worker, instruments["MSFT"], connection)
    worker.process(
        connection,
        NOW.timestamp(),
        [trade("AAPL", 0, "100.00", trade_id="a1"), trade("MSFT", 0, "50.00")],
    )
    assert asyncio.run(worker.publisher.publish_due(now=1.0)) == 2
    assert snapshots_get(symbols=["AAPL", "MSFT"])["MSFT"]["seq"] == 1

    redis.stop()
    worker.process(
        connection, NOW.timestamp() + 1, [trade("AAPL", 1, "101.00", trade_id="a2")]
    )
    assert asyncio.run(worker.publisher.publish_due(now=2.0)) == 0
    assert asyncio.run(worker.publisher.publish_due(now=3.0)) == 0  # not tried
    assert "AAPL" in worker.publisher.dirty and aapl.seq == 1  # kept, no gap

    redis.start()  # empty, as after a restart: MSFT has not ticked since
    deadline = time.monotonic() + 5  # a down Redis is tried once a second
    while not asyncio.run(worker.publisher.publish_due(now=4.0)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    asyncio.run(worker.publisher.publish_due(now=5.0))
    back = snapshots_get(symbols=["AAPL", "MSFT"])
    assert (back["AAPL"]["seq"], back["AAPL"]["last"]) == (2, "101.00")
    assert (back["MSFT"]["seq"], back["MSFT"]["last"]) == (2, "50.00")
    assert msft.seq == 2


def test_a_redis_that_stalls_mid_reply_never_holds_the_loop_for_good(
    redis_outage_settings, instruments, make_worker, attach
):
    """SIGSTOP: the server keeps its sockets open and never answers. A batch's
    store-and-send call (one Redis call on the loop: the channel layer is the
    snapshots' Redis) gives up after `SEND_TIMEOUT` and counts as an outage,
    retried once a second: the batch stays dirty with its seq unspent."""
    redis = redis_outage_settings
    worker, connection = make_worker()
    state = attach(worker, instruments["AAPL"], connection)
    publisher = worker.publisher
    assert publisher.together
    worker.process(connection, NOW.timestamp(), [trade("AAPL", 0, "100.00")])

    async def run() -> tuple[int, int]:
        assert await publisher.publish_due(now=1.0) == 1  # connected
        os.kill(redis.process.pid, signal.SIGSTOP)
        try:
            worker.process(
                connection,
                NOW.timestamp() + 1,
                [trade("AAPL", 1, "101.00", trade_id="a2")],
            )
            failures = publisher.failures
            sent = await asyncio.wait_for(publisher.publish_due(now=2.0), 30)
            return sent, publisher.failures - failures
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)

    assert asyncio.run(run()) == (0, 1)
    assert "AAPL" in publisher.dirty and state.seq == 1
    assert not publisher.redis.should_try()  # an outage: retried later
