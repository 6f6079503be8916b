"""The connection health score: the formula and the history it is built
from, on real `FeedConnection`/`ConnectionStats` objects (not started: the
test sets what the receive thread and the worker would)."""

from __future__ import annotations

import pytest

from marketdata.providers import provider_class
from streaming.connection import FeedConnection
from streaming.health_score import (
    HealthInputs,
    HealthLimits,
    HealthTracker,
    health_score,
)

T0 = 1_700_000_000.0


def connection(provider="simulator", asset_class="crypto") -> FeedConnection:
    c = FeedConnection(
        key=f"{provider}:{asset_class}",
        provider=provider_class(provider)(),
        asset_class=asset_class,
        sink=lambda *args: None,
    )
    c.desired = {"BTC/USD", "ETH/USD"}
    c.state = "live"
    return c


def run(tracker, c, seconds, *, per_second=0, start=T0, each=None):
    """Observe once a second for `seconds`, adding `per_second` trades."""
    for i in range(seconds):
        c.stats.by_kind["trade"] += per_second
        if each is not None:
            each(i)
        tracker.observe(c, start + i)
    return start + seconds - 1


def test_a_perfect_connection_scores_100():
    score = health_score(HealthInputs(live=True, market_open=True, subscribed=2))
    assert score.value == 100 and score.healthy and score.reasons == []


def test_each_part_weighs_what_the_docstring_says():
    # Every part at 0 except uptime: 30 of 100 points.
    inputs = HealthInputs(
        live=True,
        uptime=1.0,
        reconnects_per_hour=10,
        error_rate=0.05,
        lag_p99_ms=10_000,
        market_open=True,
        subscribed=1,
        rate=0.0,
        baseline=10.0,
    )
    score = health_score(inputs)
    assert score.value == 30
    assert score.parts == {
        "uptime": 1.0,
        "reconnects": 0.0,
        "errors": 0.0,
        "lag": 0.0,
        "rate": 0.0,
    }
    assert not score.healthy
    assert any("reconnects" in r for r in score.reasons)
    assert any("lag p99 10.0 s" in r for r in score.reasons)
    # Half way on each limited part: 30 + (20 + 15 + 15) / 2 + 20 (rate at
    # half the baseline counts as fine).
    half = health_score(
        HealthInputs(
            live=True,
            reconnects_per_hour=5,
            error_rate=0.025,
            lag_p99_ms=5500,
            market_open=True,
            subscribed=1,
            rate=5.0,
            baseline=10.0,
        )
    )
    assert half.value == 75 and half.healthy


def test_a_closed_market_does_not_count_silence_against_it():
    closed = health_score(
        HealthInputs(live=True, market_open=False, subscribed=5, rate=0, baseline=9)
    )
    assert closed.value == 100 and closed.healthy


def test_down_past_the_grace_is_unhealthy_whatever_the_score():
    score = health_score(HealthInputs(live=False, down_s=6, state="backoff"))
    assert score.value == 100 and not score.healthy
    assert score.reasons[0] == "backoff for 6 s"
    assert health_score(HealthInputs(live=False, down_s=2, state="backoff")).healthy


def test_uptime_is_the_share_of_the_window_live():
    tracker, c = HealthTracker(market_open=lambda *_: True), connection()
    # 300 s live, then 300 s down, in a 600 s window.
    end = run(
        tracker,
        c,
        600,
        per_second=3,
        each=lambda i: setattr(c, "state", "live" if i < 300 else "backoff"),
    )
    inputs = tracker.inputs(c, end)
    assert inputs.uptime == pytest.approx(0.5, abs=0.01)
    score = tracker.score(c, end)
    assert not score.healthy and score.reasons[0].startswith("backoff for 29")


def test_reconnects_in_the_last_hour_only():
    tracker, c = HealthTracker(market_open=lambda *_: False), connection()
    tracker.observe(c, T0)
    c.stats.reconnects += 4
    tracker.observe(c, T0 + 1)
    assert tracker.inputs(c, T0 + 2).reconnects_per_hour == 4
    assert tracker.score(c, T0 + 2).parts["reconnects"] == pytest.approx(0.6)
    c.stats.reconnects += 1
    tracker.observe(c, T0 + 3000)
    tracker.observe(c, T0 + 3700)  # the first four are over an hour old
    assert tracker.inputs(c, T0 + 3700).reconnects_per_hour == 1


def test_error_rate_counts_errors_and_malformed_frames_per_message():
    tracker, c = HealthTracker(market_open=lambda *_: True), connection()

    def problems(i):
        if i % 10 == 0:
            c.stats.errors += 1
        if i % 20 == 0:
            c.stats.malformed += 1

    end = run(tracker, c, 100, per_second=1, each=problems)
    inputs = tracker.inputs(c, end)
    # After the first sample: 9 errors and 4 malformed in 99 messages.
    assert inputs.error_rate == pytest.approx(13 / 99)
    assert tracker.score(c, end).parts["errors"] == 0.0


def test_lag_p99_comes_from_the_connection_lag_samples():
    tracker, c = HealthTracker(market_open=lambda *_: True), connection()
    c.stats.lags.extend([0.005] * 98 + [4.0, 4.0])
    tracker.observe(c, T0)
    inputs = tracker.inputs(c, T0)
    assert inputs.lag_p99_ms == pytest.approx(4000)
    assert tracker.score(c, T0).parts["lag"] == pytest.approx(6 / 9, abs=0.01)
    assert len(c.stats.lags) == 100, "reading the lags must not clear them"


def test_baseline_learns_while_open_and_silence_is_judged_against_it():
    opened = {"now": True}
    tracker = HealthTracker(market_open=lambda *_: opened["now"])
    c = connection()
    # Ten minutes at 20 messages/s build the baseline.
    end = run(tracker, c, 600, per_second=20)
    baseline = tracker.inputs(c, end).baseline
    assert baseline == pytest.approx(20, rel=0.05)
    assert tracker.score(c, end).value == 100
    # Silent: 5 messages at 20/s is 0.25 s, so the 5 s minimum applies.
    end = run(tracker, c, 7, per_second=0, start=end + 1)
    score = tracker.score(c, end)
    assert not score.healthy
    assert score.reasons[0] == "no market data for 7 s while open"
    # The same silence with the market closed is fine, and teaches nothing.
    opened["now"] = False
    baseline = tracker.inputs(c, end).baseline
    end = run(tracker, c, 120, per_second=0, start=end + 1)
    assert tracker.score(c, end).healthy
    assert tracker.inputs(c, end).baseline == pytest.approx(baseline)


def test_without_a_baseline_silence_while_open_is_unhealthy_after_a_minute():
    tracker = HealthTracker(
        market_open=lambda *_: True, limits=HealthLimits(silent_after=60)
    )
    c = connection()
    end = run(tracker, c, 60, per_second=0)
    assert tracker.score(c, end).healthy  # 59 s
    end = run(tracker, c, 3, per_second=0, start=end + 1)
    score = tracker.score(c, end)
    assert not score.healthy and score.parts["rate"] == 0.0


def test_a_slow_connection_loses_the_rate_points():
    tracker, c = HealthTracker(market_open=lambda *_: True), connection()
    end = run(tracker, c, 600, per_second=20)
    end = run(tracker, c, 120, per_second=2, start=end + 1)  # a tenth of usual
    score = tracker.score(c, end)
    assert score.parts["rate"] == pytest.approx(0.2, abs=0.05)
    assert any("messages/s while open (usually" in r for r in score.reasons)


def test_never_started_is_neither_up_nor_down_and_an_unanswered_ping_is_down():
    tracker, c = HealthTracker(market_open=lambda *_: False), connection()
    c.state = "idle"
    end = run(tracker, c, 30)
    assert tracker.score(c, end).healthy and tracker.inputs(c, end).uptime == 1.0
    c.state = "live"
    c.ping_sent_at = end - 10  # the connection's ping_timeout is 4 s
    score = tracker.score(c, end)
    assert not score.healthy and score.reasons[0] == "no answer to a ping for 10 s"
