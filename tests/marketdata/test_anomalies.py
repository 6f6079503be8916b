"""Market anomalies (marketdata.anomalies) on planted spikes and surges, and
none on a quiet seeded random walk."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from marketdata.anomalies import (
    ANOMALY_KINDS,
    Anomaly,
    AnomalyConfig,
    AnomalyDetector,
    anomalies_scan,
)

START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


@dataclass
class B:
    ts: datetime
    close: float
    volume: float
    trade_count: int | None


def walk(minutes: int, *, seed: int = 3, sigma: float = 0.0005) -> list[B]:
    """A quiet 24/7 market: Gaussian 1-minute returns, gamma volumes,
    Poisson-like trade counts."""
    rng = random.Random(seed)
    price, bars = 100.0, []
    for i in range(minutes):
        price *= math.exp(rng.gauss(0, sigma))
        volume = rng.gammavariate(4, 250)
        trades = max(1, round(rng.gauss(40, 6)))
        bars.append(B(START + timedelta(minutes=i), price, volume, trades))
    return bars


def plant_jump(bars: list[B], i: int, factor: float) -> None:
    for bar in bars[i:]:
        bar.close *= factor


def test_kinds_are_documented():
    assert set(ANOMALY_KINDS) == {"return_spike", "volume_surge", "trade_rate_surge"}


def test_a_planted_return_spike_is_found_at_its_minute_with_direction_and_reason():
    bars = walk(600)
    plant_jump(bars, 400, 1.01)  # +1 % in one minute, sigma is 0.05 %
    found = anomalies_scan(bars, symbol="BTC/USD")
    spikes = [a for a in found if a.kind == "return_spike"]
    assert [a.ts for a in spikes] == [bars[400].ts]
    spike = spikes[0]
    assert isinstance(spike, Anomaly) and spike.direction == "up"
    assert spike.score >= 6 and spike.value == pytest.approx(math.log(1.01), abs=0.002)
    assert "robust deviations" in spike.explain and spike.symbol == "BTC/USD"


def test_a_downward_spike_says_down():
    bars = walk(600)
    plant_jump(bars, 300, 0.985)
    spikes = [a for a in anomalies_scan(bars, symbol="X") if a.kind == "return_spike"]
    assert [(a.ts, a.direction) for a in spikes] == [(bars[300].ts, "down")]


def test_planted_volume_and_trade_rate_surges_are_found():
    bars = walk(600)
    bars[350].volume *= 12
    bars[500].trade_count = 400
    found = anomalies_scan(bars, symbol="X")
    assert [(a.kind, a.ts) for a in found] == [
        ("volume_surge", bars[350].ts),
        ("trade_rate_surge", bars[500].ts),
    ]
    surge = found[0]
    assert surge.score >= 5 and surge.direction == ""
    assert surge.baseline == pytest.approx(1000, rel=0.25)  # gamma(4, 250) median


def test_a_surge_just_under_the_threshold_is_not_reported():
    bars = walk(600)
    cfg = AnomalyConfig()
    recent = sorted(b.volume for b in bars[230:350])
    median = (recent[59] + recent[60]) / 2
    bars[350].volume = median * cfg.surge * 0.98
    assert not [a for a in anomalies_scan(bars, symbol="X") if a.ts == bars[350].ts]
    bars[350].volume = median * cfg.surge * 1.3
    found = anomalies_scan(bars, symbol="X")
    assert [(a.kind, a.ts) for a in found] == [("volume_surge", bars[350].ts)]


def test_nothing_is_tested_during_warm_up():
    bars = walk(100)
    plant_jump(bars, 10, 1.05)
    bars[12].volume *= 50
    assert anomalies_scan(bars, symbol="X") == []


def test_an_overnight_gap_is_not_a_spike():
    bars = walk(600)
    later = [replace(b, ts=b.ts + timedelta(hours=16)) for b in bars[300:]]
    plant_jump(later, 0, 1.03)  # the open gaps up 3 % after 16 hours
    assert anomalies_scan(bars[:300] + later, symbol="X") == []


def test_time_of_day_a_busy_open_is_normal_after_days_of_busy_opens():
    """Every day the first 5 minutes of 14:30 UTC trade 8x the volume: once
    the slot has history, that is the usual for this time of day."""
    rng = random.Random(5)
    bars, price = [], 100.0
    for day in range(8):
        for minute in range(12 * 60, 18 * 60):
            ts = START + timedelta(days=day, minutes=minute)
            price *= math.exp(rng.gauss(0, 0.0005))
            volume = rng.gammavariate(4, 250)
            if 14 * 60 + 30 <= minute < 14 * 60 + 35:
                volume *= 8
            bars.append(B(ts, price, volume, None))
    found = anomalies_scan(bars, symbol="X")
    days_flagged = sorted({a.ts.date() for a in found if a.kind == "volume_surge"})
    assert days_flagged and len(days_flagged) <= AnomalyConfig().min_days
    assert all(d.day <= 5 + AnomalyConfig().min_days for d in days_flagged)
    last_day = bars[-1].ts.date()
    assert not [a for a in found if a.ts.date() == last_day]
    # The recent-window-only reason is given while the slot has no history.
    assert "no time-of-day history" in found[0].explain


def test_quiet_random_walk_false_alarm_rate():
    """20 days of a quiet 24/7 market (28,800 minutes, three seeds): the
    false-alarm rate at the default thresholds, printed for the README."""
    minutes = 0
    alarms: dict[str, int] = dict.fromkeys(ANOMALY_KINDS, 0)
    for seed in (11, 12, 13):
        bars = walk(20 * 24 * 60, seed=seed)
        minutes += len(bars)
        for a in anomalies_scan(bars, symbol="X"):
            alarms[a.kind] += 1
    print(f"false alarms over {minutes} quiet minutes: {alarms}")
    assert sum(alarms.values()) / minutes < 1e-4


def test_repeated_or_older_minutes_are_ignored():
    bars = walk(200)
    detector = AnomalyDetector("X")
    for bar in bars:
        detector.on_minute(bar)
    spike = replace(bars[-1], close=bars[-1].close * 1.05)
    assert detector.on_minute(spike) == []  # same minute again: ignored
