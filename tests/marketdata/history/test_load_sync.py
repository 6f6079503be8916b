"""load_history --sync against the simulator's REST (in-thread server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from marketdata.models import Bar, ChunkState, LoadJob
from simulator.prices import minute_bars

pytestmark = pytest.mark.django_db


def truth(symbol, start, end, sim):
    return len(minute_bars(symbol, start, end, seed=sim.seed, hours=sim.hours))


def test_sync_load_matches_truth_and_second_run_adds_nothing(
    simulator_settings, instruments, capsys
):
    sim = simulator_settings
    call_command(
        "load_history", "--symbols", "AAPL,BTC/USD", "--start", "2024-01-25",
        "--end", "2024-03-03", "--sync",
    )  # fmt: skip
    start, end = datetime(2024, 1, 25, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC)
    for symbol in ("AAPL", "BTC/USD"):
        stored = Bar.objects.filter(
            instrument=instruments[symbol], timeframe="1m"
        ).count()
        assert stored == truth(symbol, start, end, sim) > 0
    job = LoadJob.objects.get()
    assert job.state == "done"
    assert job.chunks.count() == 6  # 2 instruments x (Jan, Feb, Mar)
    out = capsys.readouterr().out
    assert "AAPL" in out and "bars added" in out

    call_command(
        "load_history", "--symbols", "AAPL,BTC/USD", "--start", "2024-01-25",
        "--end", "2024-03-03", "--sync",
    )  # fmt: skip
    second = LoadJob.objects.latest("created_at")
    assert second.id != job.id
    assert set(second.chunks.values_list("state", flat=True)) == {ChunkState.SKIPPED}
    assert sum(second.chunks.values_list("bars_added", flat=True)) == 0


def test_daily_load_and_chart_read(simulator_settings, instruments, client, user):
    from simulator.prices import daily_bars

    sim = simulator_settings
    sim.hours = "nyse"
    call_command(
        "load_history", "--symbols", "SPY", "--timeframe", "1d", "--start", "2022-06-01",
        "--end", "2024-02-01", "--sync",
    )  # fmt: skip
    job = LoadJob.objects.get()
    assert job.state == "done" and job.chunks.count() == 3  # 2022, 2023, 2024
    stored = list(
        Bar.objects.filter(instrument=instruments["SPY"], timeframe="1d").order_by("ts")
    )
    truth_days = daily_bars(
        "SPY", datetime(2022, 6, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC),
        seed=sim.seed, hours="nyse",
    )  # fmt: skip
    assert len(stored) == len(truth_days) > 400
    assert [float(b.close) for b in stored] == pytest.approx(list(truth_days.c))
    assert all(
        b.ts.hour in (4, 5) for b in stored
    )  # New York midnight, as Alpaca stamps
    client.force_login(user)
    data = client.get(
        "/api/instruments/SPY/bars", {"timeframe": "1d", "limit": "5000"}
    ).json()
    assert [b["t"] for b in data["bars"]] == [int(b.ts.timestamp()) for b in stored]


def test_crypto_goes_to_its_own_provider(simulator_settings, instruments, settings):
    settings.TAPELINE_CRYPTO_PROVIDER = "binance"
    call_command(
        "load_history", "--symbols", "AAPL,BTC/USD", "--start", "2024-03-04",
        "--end", "2024-03-06", "--sync",
    )  # fmt: skip
    jobs = {job.provider: job for job in LoadJob.objects.all()}
    assert set(jobs) == {"simulator", "binance"}
    assert jobs["binance"].symbols == ["BTC/USD"] and jobs["simulator"].symbols == [
        "AAPL"
    ]
    assert all(job.state == "done" for job in jobs.values())
    btc = Bar.objects.filter(instrument=instruments["BTC/USD"])
    assert btc.count() == 2 * 1440 and set(btc.values_list("provider", flat=True)) == {
        "binance"
    }
