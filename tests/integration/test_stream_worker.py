"""The stream worker against the real simulator, Redis and PostgreSQL.

The worker runs in a thread of the test process (its own event loop, its own
database thread), talks to the simulator over loopback WebSockets and
publishes through the Redis channel layer, where the test listens like a
consumer would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.layers import get_channel_layer

from core.groups import symbol_group
from marketdata.models import Bar, Gap, WatchlistItem
from marketdata.services import watchlist_create
from streaming.health import suspect_counts
from streaming.worker import StreamWorker, WorkerOptions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.transactional,
]


class WorkerThread:
    """`StreamWorker.run()` in a thread; `stop()` is what SIGTERM does."""

    def __init__(self, **options) -> None:
        options.setdefault("backoff_base", 0.2)
        options.setdefault("backoff_cap", 1.0)
        options.setdefault("backoff_reset", 1.0)
        options.setdefault("gap_settle", 0.5)
        self.worker = StreamWorker(options=WorkerOptions(**options))
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> StreamWorker:
        self.thread.start()
        try:
            wait_for(lambda: self.worker.ready or not self.thread.is_alive(), 15)
        except BaseException:
            self.stop()
            raise
        return self.worker

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        loop = self.worker.loop
        if self.thread.is_alive() and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.worker.request_shutdown)
        self.thread.join(15)
        assert not self.thread.is_alive(), "the worker did not stop"


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def collect(symbols, *, until, timeout: float = 15.0) -> list[dict]:
    """Listen on the instruments' groups like a consumer until `until(messages)`."""
    layer = get_channel_layer()

    async def run() -> list[dict]:
        channel = await layer.new_channel()
        for symbol in symbols:
            await layer.group_add(symbol_group(symbol), channel)
        messages: list[dict] = []
        deadline = time.monotonic() + timeout
        try:
            while not until(messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"only {len(messages)} messages in {timeout}s")
                try:
                    messages.append(
                        await asyncio.wait_for(layer.receive(channel), remaining)
                    )
                except TimeoutError:
                    continue
        finally:
            for symbol in symbols:
                await layer.group_discard(symbol_group(symbol), channel)
        return messages

    return asyncio.run(run())


def sim_subscriptions(simulator) -> set[str]:
    """Trade subscriptions the simulator holds for its Alpaca sessions."""
    symbols: set[str] = set()
    for session in list(simulator.sessions):
        subs = getattr(session, "subs", None)
        if subs and getattr(session, "authenticated", False):
            symbols.update(subs.get("trades", []))
    return symbols


@pytest.fixture
def sim(simulator_settings, settings):
    settings.ALPACA_API_KEY = simulator_settings.key_id
    settings.ALPACA_API_SECRET = simulator_settings.secret
    settings.FINNHUB_TOKEN = simulator_settings.finnhub_token
    settings.TAPELINE_CRYPTO_PROVIDER = ""
    return simulator_settings


@pytest.mark.parametrize(
    ("provider", "crypto_provider", "symbol", "expected"),
    [
        ("simulator", None, "AAPL", "simulator"),
        ("alpaca", None, "AAPL", "alpaca"),
        ("alpaca", None, "BTC/USD", "alpaca"),
        ("finnhub", None, "MSFT", "finnhub"),
        ("simulator", "binance", "ETH/USD", "binance"),
    ],
)
def test_events_reach_the_instrument_group_from_each_protocol(
    sim, user, instruments, provider, crypto_provider, symbol, expected
):
    watchlist_create(owner=user, name="Mine", symbols=[symbol])
    with WorkerThread(provider=provider, crypto_provider=crypto_provider):
        messages = collect(
            [symbol],
            # Finnhub sends trades only, a few a minute for some symbols
            until=lambda ms: any(m["snapshot"]["last"] for m in ms) and len(ms) >= 2,
            timeout=40,
        )
    assert {m["type"] for m in messages} == {"market.update"}
    snapshots = [m["snapshot"] for m in messages]
    assert {s["symbol"] for s in snapshots} == {symbol}
    assert {s["provider"] for s in snapshots} == {expected}
    seqs = [s["seq"] for s in snapshots]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    last = next(s for s in reversed(snapshots) if s["last"])
    assert Decimal(last["last"]) > 0 and last["freshness"] in ("live", "closed")


def test_watchlist_changes_reach_the_provider_without_reconnecting(
    sim, user, instruments
):
    watchlist = watchlist_create(owner=user, name="Mine", symbols=["AAPL"])
    with WorkerThread() as worker:
        wait_for(lambda: sim_subscriptions(sim) == {"AAPL"}, 10)
        connection = worker.routes["AAPL"]

        added_at = time.monotonic()
        WatchlistItem.objects.create(
            watchlist=watchlist, instrument=instruments["MSFT"]
        )
        wait_for(lambda: "MSFT" in sim_subscriptions(sim), 5)
        took_add = time.monotonic() - added_at

        removed_at = time.monotonic()
        WatchlistItem.objects.filter(instrument__symbol="AAPL").delete()
        wait_for(lambda: sim_subscriptions(sim) == {"MSFT"}, 5)
        took_remove = time.monotonic() - removed_at

        collect(["MSFT"], until=lambda ms: len(ms) >= 2)
        assert connection.stats.connects == 1  # same session throughout
    # The worker polls once a second; 2 s is the promise (margin for a busy CI).
    assert took_add < 3.0, took_add
    assert took_remove < 3.0, took_remove


def test_recovers_from_drops_malformed_frames_and_a_stall(sim, user, instruments):
    watchlist_create(owner=user, name="Crypto", symbols=["BTC/USD", "ETH/USD"])
    sim.faults.update(drop_every=2.0, malformed_rate=0.2)
    with WorkerThread(feed_stale_after=1.5) as worker:
        connection = worker.routes["BTC/USD"]
        wait_for(lambda: connection.stats.reconnects >= 3, 20)
        wait_for(lambda: connection.stats.malformed >= 3, 10)
        before = connection.stats.by_kind["trade"] + connection.stats.by_kind["quote"]
        wait_for(
            lambda: (
                connection.stats.by_kind["trade"] + connection.stats.by_kind["quote"]
                > before + 5
            ),
            10,
        )
        # A stalled feed (connected, silent) is detected and reconnected.
        sim.faults.update(drop_every=None, malformed_rate=0.0, stall=True)
        reconnects = connection.stats.reconnects
        wait_for(lambda: connection.stats.reconnects > reconnects, 15)
        assert "no market data" in connection.last_error
        sim.faults.update(stall=False)
        messages = collect(["BTC/USD", "ETH/USD"], until=lambda ms: len(ms) >= 4)
        assert connection.state == "live"
        assert worker.health()["connections"][0]["malformed"] >= 3
    assert messages[-1]["snapshot"]["freshness"] == "live"


@pytest.mark.parametrize(
    ("crypto_provider", "origins"),
    [
        # Alpaca protocol: closed minutes come as provider bars
        (None, {"live"}),
        # Finnhub: trades only, aggregated by the worker; the minutes a drop
        # cut into come from the backfill
        ("finnhub", {"live", "backfill"}),
    ],
)
def test_after_drops_every_minute_is_stored_once_and_equals_the_exchange(
    sim, user, instruments, settings, crypto_provider, origins
):
    from marketdata.gaps import gap_repair
    from simulator import prices

    symbols = ["BTC/USD", "ETH/USD"]
    watchlist_create(owner=user, name="Crypto", symbols=symbols)
    # A simulated minute every 3 s and a drop every 9 s: each connection sees
    # at least two whole minutes (stored live) and cuts into one or two
    # (left to the backfill), however slowly the machine reconnects.
    sim.clock.set(speed=20.0)
    sim.faults.update(drop_every=9.0)
    with WorkerThread(crypto_provider=crypto_provider) as worker:
        connection = worker.routes["BTC/USD"]
        wait_for(lambda: connection.stats.reconnects >= 3, 60)
        wait_for(lambda: worker.bars_stored >= 4, 60)
    sim.faults.update(drop_every=None)
    gaps = list(Gap.objects.all())
    assert worker.gaps_reported >= len(symbols) * 2
    for gap in gaps:  # the backfill actor's body (gap_backfill.fn)
        gap_repair(gap_id=gap.id)

    for symbol in symbols:
        instrument = instruments[symbol]
        stored = list(
            Bar.objects.filter(instrument=instrument, timeframe="1m").order_by("ts")
        )
        first = min(g.start for g in gaps if g.instrument_id == instrument.id)
        last_closed = worker.event_clock.replace(second=0, microsecond=0)
        window = [b for b in stored if first <= b.ts < last_closed]
        expected = int((last_closed - first).total_seconds() // 60)
        assert [b.ts for b in window] == [
            first + timedelta(minutes=i) for i in range(expected)
        ], f"{symbol}: missing or extra minutes"
        assert {b.origin for b in window} >= origins
        truth = {
            row[0]: row
            for row in prices.minute_bars(
                symbol, first, last_closed, seed=sim.seed, hours="always"
            ).rows()
        }
        # What a mismatch needs to be told apart: trades held as suspect and
        # rejected, trades too late for their minute, the gaps and sessions.
        seen = (
            f"suspect ticks {suspect_counts(worker)[1].get(symbol)}, late trades "
            f"{worker.aggregator.late_trades}, gaps "
            f"{[(f'{g.start:%H:%M}', f'{g.end:%H:%M}', g.state) for g in gaps]}"
        )
        for bar in window:
            ts, o, h, low, c, v, vwap, n = truth[bar.ts]
            got = (bar.open, bar.high, bar.low, bar.close, bar.volume)
            assert [float(x) for x in got] == pytest.approx(
                [o, h, low, c, v], rel=1e-9
            ), f"{symbol} {bar.ts:%H:%M} ({bar.origin}); {seen}"
            assert bar.trade_count == n
            assert float(bar.vwap) == pytest.approx(vwap, rel=1e-6)


def test_wrong_credentials_stop_with_one_clear_message(
    sim, user, instruments, settings, caplog
):
    settings.SIMULATOR_SECRET = "not-the-secret"
    watchlist_create(owner=user, name="Mine", symbols=["AAPL", "BTC/USD"])
    running = WorkerThread()
    started = time.monotonic()
    running.thread.start()
    running.thread.join(30)
    assert not running.thread.is_alive(), "the worker kept running"
    assert running.worker.exit_code != 0
    failures = [r for r in caplog.records if "authentication failed" in r.getMessage()]
    # one line per connection (stocks + crypto), no retries
    assert len(failures) == len(running.worker.connections) == 2
    assert all(c.stats.connects == 1 for c in running.worker.connections.values())
    assert time.monotonic() - started < 30


def test_shards_split_instruments_without_overlap_or_omission(sim, user, instruments):
    # crc32 % 3 puts these in shards 0 (4), 1 (6) and 2 (1)
    symbols = ["AAPL", "MSFT", "NVDA", "AMD", "TSLA", "SPY", "QQQ"]
    symbols += ["BTC/USD", "ETH/USD", "IWM", "GOOGL"]
    watchlist_create(owner=user, name="Many", symbols=symbols)
    from streaming.shard import Shard

    seen = []
    for index in range(3):
        with WorkerThread(shard=Shard(index, 3)) as worker:
            wait_for(
                lambda w=worker: all(
                    c.subscribed == c.desired for c in w.connections.values()
                ),
                10,
            )
            seen.append({s for c in worker.connections.values() for s in c.subscribed})
    assert sum(len(s) for s in seen) == len(symbols)
    assert set().union(*seen) == set(symbols)
    assert all(seen)  # each of the three workers got a share


def test_health_reaches_redis_and_the_status_group(sim, user, instruments):
    from streaming.selectors import feed_status_get

    watchlist_create(owner=user, name="Mine", symbols=["BTC/USD"])
    layer = get_channel_layer()

    async def status_message():
        channel = await layer.new_channel()
        await layer.group_add("feed.status", channel)
        return await asyncio.wait_for(layer.receive(channel), 10)

    with WorkerThread():
        message = asyncio.run(status_message())
        status = wait_for(
            lambda: (
                (s := feed_status_get())["ok"]
                and s["connections"][0]["totals"]["quote"]
                and s
            ),
            10,
        )
    assert message["type"] == "feed.status" and "workers" in message["status"]
    [connection] = status["connections"]
    assert connection["provider"] == "simulator" and connection["subscribed"] == 1
    assert connection["state"] == "live" and connection["worker_alive"]
    after = feed_status_get()
    assert after["workers"][0]["state"] == "stopped" and not after["ok"]


def test_shutdown_stores_the_forming_minute(sim, user, instruments):
    watchlist_create(owner=user, name="Mine", symbols=["BTC/USD"])
    sim.clock.set(speed=10.0)  # the first (partly seen) minute passes in 6 s
    # Finnhub sends trades only: the forming minute is always the worker's own
    # (with Alpaca a just-closed provider bar can be the newest one).
    running = WorkerThread(crypto_provider="finnhub")
    with running as worker:
        first = wait_for(lambda: worker.aggregator.forming("BTC/USD"), 10).ts
        wait_for(lambda: worker.aggregator.forming("BTC/USD").ts > first, 15)
    forming = worker.aggregator.forming("BTC/USD")
    stored = Bar.objects.filter(
        instrument=instruments["BTC/USD"], ts=forming.ts
    ).first()
    assert stored is not None and stored.close == forming.close
    assert stored.volume == forming.volume and stored.origin == "live"
    # remembered as partial: the next start replaces it through the backfill
    from streaming.services import partial_bars_take

    assert partial_bars_take(symbols=["BTC/USD"]) == {"BTC/USD": forming.ts}


def test_connection_limit_backs_off_past_the_providers_hold_time(
    sim, user, instruments
):
    watchlist_create(owner=user, name="Mine", symbols=["AAPL"])
    sim.faults.update(connection_limit=True)  # one session per key, like Alpaca
    with WorkerThread() as first:
        wait_for(lambda: first.routes["AAPL"].state == "live", 10)
        with WorkerThread(connection_limit_backoff=30) as second:
            connection = second.routes["AAPL"]
            wait_for(lambda: "connection limit" in connection.last_error, 10)
            time.sleep(3)  # a retry loop would have reconnected many times by now
            assert connection.state == "backoff"
            assert connection.stats.connects == 1
            assert "retrying after 30s" in connection.last_error


def test_monitor_raises_and_clears_ops_alerts_on_a_real_session(
    sim, user, instruments, settings
):
    """A stalled simulator (connected, silent) raises one no-quotes ops alert,
    cleared when quotes come back. Crypto, so the market is open whatever
    the hour."""
    from alerts.models import OpsAlert

    settings.STREAM_MONITOR_NO_QUOTES_AFTER = 2.0
    watchlist_create(owner=user, name="Crypto", symbols=["BTC/USD", "ETH/USD"])
    # feed_stale_after: the watchdog must not reconnect the silent session.
    with WorkerThread(feed_stale_after=600) as worker:
        connection = worker.routes["BTC/USD"]
        wait_for(lambda: connection.stats.by_kind["quote"] > 0, 15)
        sim.faults.update(stall=True)
        wait_for(lambda: OpsAlert.objects.filter(kind="no_quotes").exists(), 15)
        time.sleep(3)  # the condition keeps holding: still one alert
        [alert] = OpsAlert.objects.filter(kind="no_quotes")
        assert alert.active and alert.connection == connection.key
        assert connection.state == "live"  # silent, not disconnected
        sim.faults.update(stall=False)
        wait_for(lambda: OpsAlert.objects.filter(cleared_at__isnull=False).exists(), 15)
    assert OpsAlert.objects.count() == 1
    assert "no quotes for" in OpsAlert.objects.get().message


def test_a_silent_feed_publishes_its_instruments_as_stale(sim, user, instruments):
    """No frame arrives while the feed is stalled, yet the watchdog's change
    (live -> stale) reaches consumers: a periodic step's change is published
    on its own, not with the next frame."""
    watchlist_create(owner=user, name="Crypto", symbols=["BTC/USD"])
    # feed_stale_after: the silent session is not reconnected meanwhile.
    with WorkerThread(stale_after=1.0, feed_stale_after=600) as worker:
        connection = worker.routes["BTC/USD"]
        wait_for(lambda: connection.stats.by_kind["quote"] > 0, 15)
        sim.faults.update(stall=True)
        time.sleep(0.3)  # a frame on its way when the stall began
        frames = connection.stats.frames
        messages = collect(
            ["BTC/USD"],
            until=lambda ms: any(m["snapshot"]["freshness"] == "stale" for m in ms),
            timeout=10,
        )
        assert connection.stats.frames == frames  # nothing came in meanwhile
    stale = next(
        m["snapshot"] for m in messages if m["snapshot"]["freshness"] == "stale"
    )
    assert stale["symbol"] == "BTC/USD" and stale["bid"]
