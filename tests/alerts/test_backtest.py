"""The dry run ("test against history") agrees with a replay of the same
stored bars through a running engine that loaded the rules from the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from alerts.backtest import bar_events, rule_dry_run
from alerts.engine import AlertEngine
from alerts.services import alert_rule_create
from marketdata.calendar import NEW_YORK
from marketdata.models import Bar
from marketdata.services import BarRow, bars_upsert
from tests.factories import minute_bars

pytestmark = pytest.mark.django_db

END = datetime(2024, 5, 2, 20, 0, tzinfo=UTC)
WARMUP = 100  # stored minutes before the window


def store_bars(instrument, minutes: int, seed: int = 4, end: datetime = END) -> None:
    rng = np.random.default_rng(seed)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.002, minutes))), 2)
    volumes = rng.integers(50, 150, minutes) * np.where(
        rng.random(minutes) < 0.03, 6, 1
    )
    rows = minute_bars(
        instrument,
        closes,
        start=end - timedelta(minutes=minutes),
        volumes=[int(v) for v in volumes],
        spread=Decimal("0.05"),
    )
    bars_upsert(rows=rows, provider="test")


def make_rules(user, instrument):
    common = {"owner": user, "instrument": instrument, "cooldown_seconds": 0}
    return [
        alert_rule_create(
            **common, kind="price", direction="above", level=Decimal("100.5")
        ),
        alert_rule_create(
            **common,
            kind="price",
            direction="below",
            level=Decimal("99.5"),
            hysteresis=Decimal("0.3"),
        ),
        alert_rule_create(
            **common, kind="change_pct", direction="above", level=Decimal("0.5")
        ),
        alert_rule_create(
            **common, kind="rsi", direction="above", level=65, timeframe="1m", period=14
        ),
        alert_rule_create(
            **common, kind="rsi", direction="below", level=35, timeframe="5m", period=6
        ),
        alert_rule_create(
            **common,
            kind="ma_cross",
            direction="above",
            timeframe="1m",
            fast_period=5,
            slow_period=20,
            ma_type="sma",
        ),
        alert_rule_create(
            **common,
            kind="ma_cross",
            direction="below",
            timeframe="1m",
            fast_period=5,
            slow_period=20,
            ma_type="ema",
        ),
        alert_rule_create(
            **common, kind="volume_spike", direction="above", level=3, period=20
        ),
    ]


def replay_all(instrument, start: datetime) -> list:
    """An independent replay: every stored bar, the rules loaded from the DB."""
    engine = AlertEngine(symbols={instrument.symbol}, seed_from_db=False)
    engine.reload()
    bars = list(
        Bar.objects.filter(instrument=instrument, timeframe="1m").order_by("ts")
    )
    fired = []
    closes_by_day: dict = {}
    for bar in bars:
        closes_by_day[bar.ts.astimezone(NEW_YORK).date()] = bar.close
    engine.set_freshness(instrument.symbol, "stale")
    for bar in bars:
        if bar.ts >= start:
            engine.set_freshness(instrument.symbol, "live")
        day = bar.ts.astimezone(NEW_YORK).date()
        previous_days = [d for d in closes_by_day if d < day]
        if previous_days:
            engine.set_prev_close(instrument.symbol, closes_by_day[max(previous_days)])
        # The same stand-in for the trades inside each minute as the dry run.
        for event in bar_events(instrument.symbol, bar):
            fired.extend(engine.on_event(event))
    return fired


def test_dry_run_agrees_with_replay_through_the_engine(user, instruments):
    instrument = instruments["AAPL"]
    store_bars(instrument, WARMUP + 24 * 60)
    rules = make_rules(user, instrument)
    start = END - timedelta(days=1)

    dry = {}
    for rule in rules:
        result = rule_dry_run(rule=rule, days=1, now=END)
        assert result.bars == 24 * 60
        assert result.warmup_bars == WARMUP
        dry[rule.pk] = [(f.ts, round(f.value, 9)) for f in result.fired]

    replayed = {rule.pk: [] for rule in rules}
    for f in replay_all(instrument, start):
        replayed[f.rule_id].append((f.ts, round(f.value, 9)))

    for rule in rules:
        assert dry[rule.pk], f"crafted data must make {rule.describe()} fire"
        assert dry[rule.pk] == replayed[rule.pk], rule.describe()


def test_dry_run_of_an_unsaved_rule_and_without_bars(user, instruments):
    from alerts.models import AlertRule

    rule = AlertRule(
        owner=user,
        instrument=instruments["MSFT"],
        kind="price",
        direction="above",
        level=Decimal("10"),
        cooldown_seconds=0,
    )
    result = rule_dry_run(rule=rule, days=5, now=END)
    assert result.empty and result.fired == []
    store_bars(instruments["MSFT"], 600)
    result = rule_dry_run(rule=rule, days=5, now=END)
    assert result.bars == 600 and result.fired == []  # prices ~100: always above


def test_dry_run_days_are_bounded(user, instruments):
    from alerts.models import AlertRule

    rule = AlertRule(owner=user, instrument=instruments["MSFT"], kind="price", level=1)
    with pytest.raises(ValueError, match="1 to 30 days"):
        rule_dry_run(rule=rule, days=0)
    with pytest.raises(ValueError, match="1 to 30 days"):
        rule_dry_run(rule=rule, days=31)


def test_dry_run_sees_a_level_touched_inside_a_minute(user, instruments):
    instrument = instruments["MSFT"]
    start = END - timedelta(minutes=300)
    rows = []
    for i in range(300):
        high = Decimal("101") if i == 250 else Decimal("100.05")
        rows.append(
            BarRow(
                instrument_id=instrument.pk,
                timeframe="1m",
                ts=start + timedelta(minutes=i),
                open=Decimal("100"),
                high=high,
                low=Decimal("99.95"),
                close=Decimal("100"),
                volume=Decimal(100),
            )
        )
    bars_upsert(rows=rows, provider="test")
    rule = alert_rule_create(
        owner=user,
        instrument=instrument,
        kind="price",
        direction="above",
        level=Decimal("100.5"),
        cooldown_seconds=0,
    )
    result = rule_dry_run(rule=rule, days=1, now=END)
    assert [f.ts for f in result.fired] == [start + timedelta(minutes=250, seconds=30)]
    assert result.fired[0].price == Decimal("101")
