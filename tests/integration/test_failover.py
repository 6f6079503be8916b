"""Failover end to end: crypto on `alpaca,binance` (both protocols served by
the real simulator), the Alpaca protocol frozen like a hung process, then
thawed; the minutes around both switches are stored once and equal the
simulator's own history."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest

from marketdata.models import Bar, Gap
from marketdata.services import watchlist_create
from tests.integration.test_stream_worker import WorkerThread, sim, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.transactional]
__all__ = ["sim"]


def test_a_frozen_provider_fails_over_and_back_without_losing_a_minute(
    sim, user, instruments
):
    from marketdata.gaps import gap_repair
    from simulator import prices

    watchlist_create(owner=user, name="Crypto", symbols=["BTC/USD"])
    sim.clock.set(speed=20.0)  # a simulated minute every 3 s
    hold = 5.0
    with WorkerThread(crypto_provider="alpaca,binance", failback_hold=hold) as worker:
        route = lambda: worker.routes["BTC/USD"].provider_name  # noqa: E731
        wait_for(lambda: worker.states["BTC/USD"].last is not None, 20)
        assert route() == "alpaca"
        wait_for(lambda: worker.bars_stored >= 1, 30)

        sim.faults.update(protocol="alpaca", freeze=True)
        frozen = time.monotonic()
        wait_for(lambda: route() == "binance", 20)
        print(f"failover {time.monotonic() - frozen:.1f} s after the freeze")
        moved = worker.states["BTC/USD"].seq
        wait_for(lambda: worker.states["BTC/USD"].seq > moved + 5, 20)
        assert worker.subscriptions.router.health["alpaca"].healthy is False

        sim.faults.update(protocol="alpaca", freeze=False)
        thawed = time.monotonic()
        wait_for(lambda: worker.subscriptions.router.health["alpaca"].healthy, 30)
        back_from = worker.subscriptions.router.health["alpaca"].since
        wait_for(lambda: route() == "alpaca", hold + 20)
        print(f"fail-back {time.monotonic() - thawed:.1f} s after the thaw")
        # the hold period held: not before `hold` seconds of health
        assert worker.subscriptions.router.health["alpaca"].since == back_from
        returned = worker.states["BTC/USD"].seq
        wait_for(lambda: worker.states["BTC/USD"].seq > returned + 5, 20)
        stored = worker.bars_stored
        wait_for(lambda: worker.bars_stored >= stored + 2, 60)
        last_closed = worker.event_clock.replace(second=0, microsecond=0)

    gaps = list(Gap.objects.all())
    assert gaps, "the switches are in the gap ledger"
    for gap in gaps:  # the backfill actor's body (gap_backfill.fn)
        gap_repair(gap_id=gap.id)

    btc = instruments["BTC/USD"]
    stored = list(Bar.objects.filter(instrument=btc, timeframe="1m").order_by("ts"))
    first = stored[0].ts + timedelta(minutes=1)  # the first may be partial
    window = [b for b in stored if first <= b.ts < last_closed]
    expected = int((last_closed - first).total_seconds() // 60)
    assert [b.ts for b in window] == [
        first + timedelta(minutes=i) for i in range(expected)
    ], "missing or extra minutes"
    truth = {
        row[0]: row
        for row in prices.minute_bars(
            "BTC/USD", first, last_closed, seed=sim.seed, hours="always"
        ).rows()
    }
    for bar in window:
        ts, o, h, low, c, v, vwap, n = truth[bar.ts]
        got = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        assert [float(x) for x in got] == pytest.approx([o, h, low, c, v], rel=1e-9), (
            f"{bar.ts:%H:%M} ({bar.origin})"
        )
        assert bar.trade_count == n


def test_a_stale_second_source_is_flagged_and_clears(
    sim, settings, client, user, django_user_model, instruments
):
    """Crypto on `alpaca,binance`, Binance served by a second simulator whose
    clock is an hour behind (same seed: the same tape, an hour late). The
    cross-check flags BTC/USD with Binance as the stale source, on the status
    page and in /metrics; when that clock catches up it clears."""
    from datetime import UTC, datetime

    from streaming.services import feed_health_put
    from tests.plugins.simulator import start_simulator

    other = start_simulator()
    try:
        other.clock.set(start=datetime.now(UTC) - timedelta(hours=1))
        settings.BINANCE_API_URL = other.http_url
        settings.BINANCE_STREAM_URL = other.ws_url
        watchlist_create(owner=user, name="Crypto", symbols=["BTC/USD"])
        with WorkerThread(crypto_provider="alpaca,binance") as worker:
            worker.crosscheck.every = 1.0
            worker.crosscheck.threshold = Decimal("0.0001")
            wait_for(lambda: "BTC/USD" in worker.crosscheck.divergent, 30)
            entry = worker.crosscheck.divergent["BTC/USD"]
            assert entry["verdict"].startswith("binance looks stale")
            assert entry["ours"]["provider"] == "alpaca"

            feed_health_put(worker_id=worker.id, document=worker.health())
            staff = django_user_model.objects.create_user(
                "ops", password="x" * 12, is_staff=True
            )
            client.force_login(staff)
            page = client.get("/status/").content.decode()
            assert "binance looks stale" in page
            metrics = client.get("/metrics").content.decode()
            assert 'tapeline_stream_divergence_percent{other="binance"' in metrics

            other.clock.set(start=datetime.now(UTC))  # caught up
            worker.crosscheck.threshold = Decimal(1)  # the default
            wait_for(lambda: "BTC/USD" not in worker.crosscheck.divergent, 30)
    finally:
        other.stop_thread()
