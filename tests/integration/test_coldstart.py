"""Cold start end to end: a fresh install (no bars) started while the stock
market is closed shows last, change and change % for equities and crypto
within seconds, from the providers' snapshot endpoints; a failing endpoint is
retried while the worker keeps streaming."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from marketdata.models import Bar
from marketdata.services import watchlist_create
from simulator import prices
from streaming.snapshots import snapshots_get
from tests.integration.test_stream_worker import WorkerThread, wait_for
from tests.plugins.simulator import point_settings_at, start_simulator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.transactional,
]

SATURDAY = datetime(2025, 1, 4, 15, 0, tzinfo=UTC)  # stocks closed, crypto trading
SYMBOLS = ["AAPL", "BTC/USD"]


@pytest.fixture
def sim(settings):
    sim = start_simulator(hours="nyse", clock_start=SATURDAY)
    point_settings_at(settings, sim)
    settings.ALPACA_API_KEY = sim.key_id
    settings.ALPACA_API_SECRET = sim.secret
    settings.FINNHUB_TOKEN = sim.finnhub_token
    settings.TAPELINE_CRYPTO_PROVIDER = ""
    try:
        yield sim
    finally:
        sim.stop_thread()


def rows() -> dict[str, dict]:
    """The stored snapshots the dashboard renders its rows from."""
    return snapshots_get(symbols=SYMBOLS)


def complete(docs: dict[str, dict]) -> bool:
    return all(
        docs.get(s) and docs[s]["last"] and docs[s]["change_pct"] for s in SYMBOLS
    )


def previous_close(symbol: str, seed: int, end: datetime, hours: str) -> D:
    end_s = int(end.timestamp())
    bars = prices.minute_bars(
        symbol, end_s - 4 * 86400, end_s, seed=seed, hours=hours, limit=1,
        descending=True,
    )  # fmt: skip
    return D(str(float(bars.c[0])))


@pytest.mark.parametrize("provider", ["simulator", "finnhub"])
def test_fresh_install_rows_show_change_within_seconds(
    sim, user, instruments, provider
):
    assert not Bar.objects.exists()
    watchlist_create(owner=user, name="Mine", symbols=SYMBOLS)
    with WorkerThread(provider=provider):
        docs = wait_for(lambda: complete(d := rows()) and d, 10)
    aapl, btc = docs["AAPL"], docs["BTC/USD"]
    # Saturday: Friday's last trade against Thursday's regular close.
    thursday_close = previous_close(
        "AAPL", sim.seed, datetime(2025, 1, 2, 22, tzinfo=UTC), "nyse"
    )
    friday_close = previous_close(
        "AAPL", sim.seed, datetime(2025, 1, 3, 22, tzinfo=UTC), "nyse"
    )
    assert D(aapl["prev_close"]) == thursday_close
    assert D(aapl["last"]) == friday_close
    assert D(aapl["change"]) == friday_close - thursday_close
    assert aapl["freshness"] != "stale"
    # Crypto: against the close of the previous UTC day.
    assert D(btc["prev_close"]) == previous_close(
        "BTC/USD", sim.seed, datetime(2025, 1, 4, tzinfo=UTC), "always"
    )
    for doc in (aapl, btc):
        last, prev = D(doc["last"]), D(doc["prev_close"])
        assert D(doc["change_pct"]) == ((last - prev) / prev * 100).quantize(
            D("0.0001")
        )
        assert doc["received_at"]  # not "no data yet"


def test_failing_snapshot_endpoint_is_retried_and_the_worker_keeps_running(
    sim, user, instruments
):
    watchlist_create(owner=user, name="Mine", symbols=SYMBOLS)
    sim.faults.update(rest_500_rate=1.0)
    runner = WorkerThread()
    runner.worker.coldstart.retry_base = 0.3
    runner.worker.coldstart.max_retries = 0
    with runner as worker:
        wait_for(lambda: worker.coldstart.errors >= 2, 15)
        sim.faults.update(rest_500_rate=0.0, rest_429_rate=1.0, retry_after=1)
        errors = worker.coldstart.errors
        wait_for(lambda: worker.coldstart.errors > errors, 15)
        # Meanwhile crypto streams: its row shows the live quote.
        wait_for(lambda: (rows().get("BTC/USD") or {}).get("bid"), 10)
        assert rows().get("AAPL") is None or rows()["AAPL"]["change_pct"] is None
        sim.faults.update(rest_429_rate=0.0)
        docs = wait_for(lambda: complete(d := rows()) and d, 15)
        assert runner.thread.is_alive() and not worker.shutdown
    assert D(docs["AAPL"]["prev_close"]) > 0
