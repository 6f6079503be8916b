"""The whole stack through each fault, healing by itself (issue 10's chaos suite).

One private stack (PostgreSQL, Redis, simulator, `start_streams`,
`rundramatiq`, Daphne) serves the module, its simulated clock running 30
times as fast as the wall clock from 15:44 New York on the next trading day,
so the run crosses the 16:00 close into the post-market session. Each test
makes one fault and then only waits: no command is run by hand during or
after it (`tests.chaos.scenarios`).

The longer variants (the wall clock, longer outages, bigger loads) are in
`test_faults_long.py`, marked `chaos` (`make chaos`). Marked `chaos` here too,
to keep `make test` near 15 minutes, are the scenarios whose faults a kept
one or another `make test` file already makes: the baseline (every scenario
checks against the vendor), Redis down alone (kept with malformed frames
during it), malformed frames alone (likewise) and the interrupted load
(tests/marketdata/history/test_outages.py); and the killed Dramatiq worker
(it waits out the broker's heartbeat timeout).
"""

from __future__ import annotations

from datetime import time as dtime
from datetime import timedelta

import pytest

from marketdata.calendar import nyse_session
from tests.chaos import scenarios
from tests.chaos.conftest import build_stack, teardown_stack
from tests.chaos.episode import Episode, ceil_minute
from tests.chaos.stack import trading_day

pytestmark = [pytest.mark.integration]

MINUTE = timedelta(minutes=1)


@pytest.fixture(scope="module")
def chaos():
    stack = build_stack(speed=30.0, opens_at=dtime(15, 44))
    yield stack
    teardown_stack(stack)


@pytest.mark.chaos
def test_baseline_without_a_fault(clean_stack):
    """The harness itself: with no fault every minute equals the vendor's and
    every alert is recorded once."""
    scenarios.baseline(clean_stack, span=6 * MINUTE)


def test_postgres_down_longer_than_the_unstored_memory(clean_stack):
    scenarios.postgres_down(
        clean_stack, outage=scenarios.unstored_memory(clean_stack) + 2 * MINUTE
    )


@pytest.mark.chaos
def test_redis_down_and_back_empty(clean_stack):
    scenarios.redis_down(clean_stack, outage=5 * MINUTE)


def test_gaps_found_while_redis_is_down_are_repaired(clean_stack):
    scenarios.redis_down(clean_stack, outage=4 * MINUTE, malformed=MINUTE)


def test_stream_worker_killed_mid_minute(clean_stack):
    scenarios.streams_killed(clean_stack, down=2 * MINUTE, boot=4 * MINUTE)


@pytest.mark.chaos
def test_malformed_frames_at_25_percent(clean_stack):
    scenarios.malformed_frames(clean_stack, span=5 * MINUTE)


# About 80 s (the broker hands a killed worker's messages back after its
# heartbeat timeout): in `make chaos`, beside its longer variant; `make test`
# keeps tests/marketdata/history/test_outages.py's killed worker.
@pytest.mark.chaos
def test_dramatiq_worker_killed_mid_chunk(clean_stack):
    scenarios.dramatiq_killed(
        clean_stack, symbols=["NVDA", "SOL/USD"], start="2025-01-01", end="2025-03-01"
    )


@pytest.mark.chaos
def test_history_load_interrupted_by_a_database_outage(clean_stack):
    scenarios.load_db_outage(
        clean_stack,
        symbols=["AMD", "AVAX/USD"],
        start="2025-01-01",
        end="2025-03-01",
        outage=6.0,
    )


def test_the_whole_run_matches_the_vendor(chaos):
    """Every minute since the clock started, across the faults above and the
    16:00 close, equals the vendor's; every alert is still recorded once."""
    episode = Episode(
        stack=chaos, name="whole-run", start=ceil_minute(chaos.clock_start)
    )
    episode.alerts = list(chaos.alerts)
    episode.close(settle_minutes=1)
    session = nyse_session(trading_day(chaos.clock_start))
    assert episode.start < session.close < episode.end, "the run missed the close"
    episode.heal()
