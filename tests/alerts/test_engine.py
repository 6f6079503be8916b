"""Each rule kind fires exactly when it should on crafted tick/bar sequences."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import talib

from alerts.engine import AlertEngine
from alerts.models import AlertRule
from alerts.services import alert_events_record, alert_rule_create
from tests.alerts.helpers import T0, bar, feed, trade

pytestmark = pytest.mark.django_db


def make_engine(*symbols: str) -> AlertEngine:
    engine = AlertEngine(symbols=set(symbols) or None)
    engine.reload()
    return engine


def rule(user, instrument, **fields) -> AlertRule:
    fields.setdefault("cooldown_seconds", 0)
    return alert_rule_create(owner=user, instrument=instrument, **fields)


def fired_at(fired) -> list[float]:
    return [(f.ts - T0).total_seconds() for f in fired]


# --- price ------------------------------------------------------------------------


def test_price_above_fires_once_on_the_cross_and_not_while_beyond(user, instruments):
    r = rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine = make_engine("AAPL")
    prices = [149, 149.5, 150, 150.5, 151, 150.2, 152]
    fired = feed(engine, [trade("AAPL", p, i) for i, p in enumerate(prices)])
    assert fired_at(fired) == [2.0]
    alert = fired[0]
    assert (alert.rule_id, alert.owner_id, alert.symbol) == (r.pk, user.pk, "AAPL")
    assert alert.value == 150.0 and alert.previous == 149.5
    assert "crossed above 150" in alert.message


def test_price_rearms_below_the_level_and_fires_again(user, instruments):
    rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine = make_engine("AAPL")
    prices = [149, 151, 149.99, 150, 149, 149.5, 150.01]
    fired = feed(engine, [trade("AAPL", p, i) for i, p in enumerate(prices)])
    assert fired_at(fired) == [1.0, 3.0, 6.0]


def test_price_does_not_fire_at_start_up_when_already_beyond(user, instruments):
    rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine = make_engine("AAPL")
    fired = feed(engine, [trade("AAPL", p, i) for i, p in enumerate([155, 156, 154])])
    assert fired == []
    # It fires after the price came back below and crossed again.
    fired = feed(engine, [trade("AAPL", 149, 10), trade("AAPL", 150.5, 11)])
    assert fired_at(fired) == [11.0]


def test_rule_created_while_beyond_does_not_fire_on_the_next_tick(user, instruments):
    engine = make_engine("AAPL")
    feed(engine, [trade("AAPL", 160, 0)])
    rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine.reload()
    assert feed(engine, [trade("AAPL", 161, 1), trade("AAPL", 162, 2)]) == []


def test_price_below_with_hysteresis_band(user, instruments):
    rule(
        user,
        instruments["AAPL"],
        kind="price",
        direction="below",
        level=100,
        hysteresis=2,
    )
    engine = make_engine("AAPL")
    # Fires at 99.5; 101 is inside the band (not re-armed), so 99 does not
    # fire; 102.5 re-arms; 100 fires again.
    prices = [101, 99.5, 101, 99, 102.5, 100]
    fired = feed(engine, [trade("AAPL", p, i) for i, p in enumerate(prices)])
    assert fired_at(fired) == [1.0, 5.0]


def test_cooldown_suppresses_a_second_cross_and_consumes_it(user, instruments):
    rule(
        user,
        instruments["AAPL"],
        kind="price",
        direction="above",
        level=150,
        cooldown_seconds=60,
    )
    engine = make_engine("AAPL")
    ticks = [
        trade("AAPL", 149, 0),
        trade("AAPL", 151, 1),  # fires
        trade("AAPL", 149, 10),
        trade("AAPL", 151, 20),  # inside the cooldown: suppressed
        trade("AAPL", 152, 70),  # no new cross: nothing
        trade("AAPL", 149, 80),
        trade("AAPL", 151, 90),  # cooldown over: fires
    ]
    assert fired_at(feed(engine, ticks)) == [1.0, 90.0]
    assert engine.suppressed_count == 1


def test_one_shot_fires_once_and_the_rule_is_deactivated(user, instruments):
    r = rule(
        user,
        instruments["AAPL"],
        kind="price",
        direction="above",
        level=150,
        one_shot=True,
    )
    engine = make_engine("AAPL")
    fired = feed(
        engine,
        [trade("AAPL", p, i) for i, p in enumerate([149, 151, 149, 151])],
    )
    assert fired_at(fired) == [1.0]
    alert_events_record(fired=fired, send=False)
    r.refresh_from_db()
    assert r.active is False and r.last_fired_at == fired[0].ts
    engine.reload()
    assert r.pk not in engine.rules


def test_many_levels_only_crossed_ones_fire(user, instruments):
    rules = {
        level: rule(
            user, instruments["AAPL"], kind="price", direction="above", level=level
        )
        for level in (100, 110, 120, 130, 140)
    }
    below = rule(user, instruments["AAPL"], kind="price", direction="below", level=105)
    engine = make_engine("AAPL")
    fired = feed(engine, [trade("AAPL", 101, 0), trade("AAPL", 125, 1)])
    assert sorted(f.rule_id for f in fired) == [rules[110].pk, rules[120].pk]
    fired = feed(engine, [trade("AAPL", 104, 2)])
    assert [f.rule_id for f in fired] == [below.pk]


def test_other_symbols_and_quotes_do_not_fire(user, instruments):
    rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine = make_engine("AAPL")
    assert feed(engine, [trade("MSFT", 149, 0), trade("MSFT", 151, 1)]) == []
    assert feed(engine, [trade("AAPL", 149, 2), trade("AAPL", 151, 3)]) != []


# --- stale feed -----------------------------------------------------------------------


def test_no_evaluation_while_stale_and_no_fire_on_the_gap(user, instruments):
    rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine = make_engine("AAPL")
    feed(engine, [trade("AAPL", 149, 0)])
    engine.set_freshness("AAPL", "stale")
    assert feed(engine, [trade("AAPL", 151, 1)]) == []
    # Back to live: the first price after the gap (beyond the level) is a
    # new baseline, not a cross.
    engine.set_freshness("AAPL", "live")
    assert feed(engine, [trade("AAPL", 153, 30)]) == []
    assert feed(engine, [trade("AAPL", 149, 31), trade("AAPL", 150, 32)]) != []


def test_gap_without_ticks_while_stale_does_not_fire(user, instruments):
    rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine = make_engine("AAPL")
    feed(engine, [trade("AAPL", 149, 0)])
    engine.set_freshness("AAPL", "stale")
    engine.set_freshness("AAPL", "live")
    assert feed(engine, [trade("AAPL", 152, 60)]) == []


def test_snapshot_freshness_is_honoured(user, instruments):
    rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine = make_engine("AAPL")
    feed(engine, [trade("AAPL", 149, 0)], snapshot={"freshness": "live"})
    assert feed(engine, [trade("AAPL", 151, 1)], snapshot={"freshness": "stale"}) == []


def test_closed_market_gap_still_fires(user, instruments):
    """An overnight gap across the level is a real cross (unlike a stale feed)."""
    rule(user, instruments["AAPL"], kind="price", direction="above", level=150)
    engine = make_engine("AAPL")
    feed(engine, [trade("AAPL", 149, 0)])
    engine.set_freshness("AAPL", "closed")
    engine.set_freshness("AAPL", "live")
    assert fired_at(feed(engine, [trade("AAPL", 152, 3600)])) == [3600.0]


# --- change % -------------------------------------------------------------------------


def test_change_pct_crosses_threshold_against_previous_close(user, instruments):
    rule(user, instruments["AAPL"], kind="change_pct", direction="above", level=3)
    rule(user, instruments["AAPL"], kind="change_pct", direction="below", level=-2)
    engine = make_engine("AAPL")
    snap = {"prev_close": "100.00"}
    prices = [101, 102.9, 103, 104, 99, 97.9, 98.5, 103.5]
    fired = feed(engine, [trade("AAPL", p, i) for i, p in enumerate(prices)], snap)
    assert [(fired_at([f])[0], f.direction) for f in fired] == [
        (2.0, "above"),
        (5.0, "below"),
        (7.0, "above"),
    ]
    assert fired[0].values["prev_close"] == 100.0
    assert "+3.00%" in fired[0].message


def test_change_pct_new_previous_close_is_not_a_cross(user, instruments):
    rule(user, instruments["AAPL"], kind="change_pct", direction="above", level=3)
    engine = make_engine("AAPL")
    feed(engine, [trade("AAPL", 101, 0)], {"prev_close": "100"})
    # Next session: the reference drops, change jumps to +10% without a move.
    assert feed(engine, [trade("AAPL", 101, 1)], {"prev_close": "91.8"}) == []
    assert feed(engine, [trade("AAPL", 90, 2), trade("AAPL", 95, 3)], None) != []


def test_change_pct_without_previous_close_is_not_evaluated(user, instruments):
    rule(user, instruments["AAPL"], kind="change_pct", direction="above", level=3)
    engine = make_engine("AAPL")
    assert feed(engine, [trade("AAPL", 1, 0), trade("AAPL", 1000, 1)]) == []


# --- RSI and MA crossover on closed bars ------------------------------------------------


def random_closes(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.004, count))), 4)


def bar_index(alert) -> int:
    """Index of the minute bar whose close fired `alert` (fires at bar end)."""
    return int((alert.ts - T0).total_seconds() // 60) - 1


def expected_crosses(values: np.ndarray, level: float, direction: str) -> list[int]:
    """Indices where the series crosses `level` (no band), the first valid
    value being a baseline."""
    out, previous = [], None
    for index, value in enumerate(values):
        if np.isnan(value):
            continue
        if previous is not None:
            if direction == "above" and previous < level <= value:
                out.append(index)
            if direction == "below" and previous > level >= value:
                out.append(index)
        previous = value
    return out


def test_rsi_on_minute_bars_fires_where_talib_rsi_crosses(user, instruments):
    closes = random_closes(3, 600)
    expected_values = talib.RSI(closes, 14)
    rule(
        user,
        instruments["AAPL"],
        kind="rsi",
        direction="above",
        level=65,
        timeframe="1m",
        period=14,
    )
    rule(
        user,
        instruments["AAPL"],
        kind="rsi",
        direction="below",
        level=35,
        timeframe="1m",
        period=14,
    )
    engine = make_engine("AAPL")
    fired = feed(engine, [bar("AAPL", m, c) for m, c in enumerate(closes)])
    got = [(bar_index(f), f.direction) for f in fired]
    want = sorted(
        [(i, "above") for i in expected_crosses(expected_values, 65, "above")]
        + [(i, "below") for i in expected_crosses(expected_values, 35, "below")]
    )
    assert want, "the crafted series must cross"
    assert sorted(got) == want
    for f in fired:
        index = bar_index(f)
        assert f.values["rsi"] == pytest.approx(expected_values[index], rel=1e-9)


def test_rsi_on_5m_timeframe_from_trades(user, instruments):
    """Minute bars built from trades roll up into 5-minute buckets."""
    closes = random_closes(5, 5 * 120)
    five_minute = closes[4::5]
    expected_values = talib.RSI(five_minute, 6)
    rule(
        user,
        instruments["AAPL"],
        kind="rsi",
        direction="above",
        level=60,
        timeframe="5m",
        period=6,
    )
    engine = make_engine("AAPL")
    events = [trade("AAPL", c, 60 * m + 30) for m, c in enumerate(closes)]
    fired = feed(engine, events)
    fired += engine.on_clock(T0 + timedelta(minutes=len(closes) + 1))
    want = expected_crosses(expected_values, 60, "above")
    assert want
    # Bucket i closes with the first trade of the next minute (5*i+5).
    got = [int((f.ts - T0).total_seconds() // 60) for f in fired]
    assert got == [5 * i + 5 for i in want]


def test_ma_crossover_matches_talib_sma(user, instruments):
    closes = random_closes(11, 500)
    fast, slow = talib.SMA(closes, 5), talib.SMA(closes, 20)
    diff = fast - slow
    rule(
        user,
        instruments["AAPL"],
        kind="ma_cross",
        direction="above",
        timeframe="1m",
        fast_period=5,
        slow_period=20,
        ma_type="sma",
    )
    rule(
        user,
        instruments["AAPL"],
        kind="ma_cross",
        direction="below",
        timeframe="1m",
        fast_period=5,
        slow_period=20,
        ma_type="sma",
    )
    engine = make_engine("AAPL")
    fired = feed(engine, [bar("AAPL", m, c) for m, c in enumerate(closes)])
    got = sorted((bar_index(f), f.direction) for f in fired)
    want = sorted(
        [(i, "above") for i in expected_crosses(diff, 0.0, "above")]
        + [(i, "below") for i in expected_crosses(diff, 0.0, "below")]
    )
    assert len(want) > 3
    assert got == want


# --- volume spike -------------------------------------------------------------------


def test_volume_spike_fires_once_when_minute_volume_reaches_k_times_average(
    user, instruments
):
    rule(
        user,
        instruments["AAPL"],
        kind="volume_spike",
        direction="above",
        level=3,
        period=10,
    )
    engine = make_engine("AAPL")
    events = []
    for minute in range(10):  # ten quiet minutes: 100 shares each
        events += [trade("AAPL", 100, 60 * minute + s, size=50) for s in (1, 2)]
    assert feed(engine, events) == []
    # Minute 10: volume builds up 100, 200, 300 (= 3x average: fires), 400.
    busy = [trade("AAPL", 100, 600 + s, size=100) for s in (1, 2, 3, 4)]
    fired = feed(engine, busy)
    assert fired_at(fired) == [603.0]
    assert fired[0].values["volume"] == 300.0
    assert fired[0].values["average"] == 100.0
    # A quiet minute re-arms; the next busy minute fires again once it
    # reaches 3x the new average (8x100 + 400 + 100) / 10 = 130, i.e. 390.
    quiet = [trade("AAPL", 100, 660 + 1, size=100)]
    busy = [trade("AAPL", 100, 720 + s, size=200) for s in (1, 2, 3)]
    fired = feed(engine, quiet + busy)
    assert fired_at(fired) == [722.0]
    assert fired[0].values["average"] == 130.0


def test_volume_spike_needs_full_history(user, instruments):
    rule(
        user,
        instruments["AAPL"],
        kind="volume_spike",
        direction="above",
        level=2,
        period=30,
    )
    engine = make_engine("AAPL")
    events = [trade("AAPL", 100, 60 * m, size=10) for m in range(5)]
    events += [trade("AAPL", 100, 300 + s, size=1000) for s in range(3)]
    assert feed(engine, events) == []


# --- warm-up from stored bars ------------------------------------------------------


def test_rsi_rule_is_warmed_up_from_stored_bars(user, instruments):
    """A running engine that loads an RSI rule reads the stored minute bars, so
    the rule has a value at once and fires on the next bar that crosses."""
    from marketdata.models import Bar
    from tests.alerts.test_backtest import store_bars

    instrument = instruments["AAPL"]
    end = T0  # stored history ends where the live bars (helpers.bar) begin
    store_bars(instrument, 400, end=end)
    closes = np.array(
        [
            float(b.close)
            for b in Bar.objects.filter(instrument=instrument).order_by("ts")
        ]
    )
    closes = closes[-(10 * 14 + 1) :]  # the engine reads 10 x period + 1 bars
    stored_rsi = talib.RSI(closes, 14)
    level = 50.0
    r = rule(
        user,
        instrument,
        kind="rsi",
        direction="above" if stored_rsi[-1] < level else "below",
        level=level,
        timeframe="1m",
        period=14,
    )
    engine = AlertEngine(symbols={"AAPL"}, seed_from_db=True)
    engine.reload()
    series = engine.rules[r.pk].series
    assert series.value == pytest.approx(stored_rsi[-1], rel=1e-9)
    # Push closes in the rule's direction until talib says RSI crossed.
    step = 0.5 if r.direction == "above" else -0.5
    live, fired, price = [], [], closes[-1]
    for minute in range(60):
        price = round(price + step, 2)
        live.append(price)
        fired += engine.on_event(bar("AAPL", minute, price))
        if fired:
            break
    expected = talib.RSI(np.concatenate([closes, live]), 14)[len(closes) :]
    crossed = [
        i for i, v in enumerate(expected) if (v >= level if step > 0 else v <= level)
    ]
    assert fired and crossed and bar_index(fired[0]) == crossed[0]
    assert fired[0].values["rsi"] == pytest.approx(expected[crossed[0]], rel=1e-9)


def test_on_clock_closes_a_quiet_minute(user, instruments):
    """With no later trade, the worker's clock closes the minute so an RSI on
    1-minute bars still updates."""
    closes = random_closes(8, 40)
    values = talib.RSI(closes, 5)
    level = round(float(np.nanmax(values[:-1]) + np.nanmin(values[:-1])) / 2, 2)
    rule(
        user,
        instruments["AAPL"],
        kind="rsi",
        direction="above",
        level=str(level),
        timeframe="1m",
        period=5,
    )
    engine = make_engine("AAPL")
    fired = []
    for minute, close in enumerate(closes):
        fired += engine.on_event(trade("AAPL", close, 60 * minute + 10))
        fired += engine.on_clock(T0 + timedelta(minutes=minute + 1, seconds=4))
    want = expected_crosses(values, level, "above")
    assert want
    # Each minute closed by the clock, 4 s after its end, not by the next trade.
    assert [f.ts for f in fired] == [
        T0 + timedelta(minutes=i + 1, seconds=4) for i in want
    ]


def test_rsi_on_5m_is_warmed_up_from_bars_resampled_by_the_database(user, instruments):
    from marketdata.models import Bar
    from tests.alerts.test_backtest import store_bars

    instrument = instruments["AAPL"]
    store_bars(instrument, 1000, end=T0)  # 200 complete 5-minute buckets
    closes = np.array(
        [
            float(b.close)
            for b in Bar.objects.filter(instrument=instrument).order_by("ts")
        ]
    )
    buckets = closes[4::5][-(10 * 6 + 1) :]  # what the engine asks for
    r = rule(
        user,
        instrument,
        kind="rsi",
        direction="above",
        level=99,
        timeframe="5m",
        period=6,
    )
    engine = AlertEngine(symbols={"AAPL"}, seed_from_db=True)
    engine.reload()
    assert engine.rules[r.pk].series.value == pytest.approx(
        talib.RSI(buckets, 6)[-1], rel=1e-9
    )
    # The next bucket closes from live minutes and continues the same series.
    live = [round(closes[-1] + 0.1 * (i + 1), 2) for i in range(5)]
    for minute, close in enumerate(live):
        engine.on_event(bar("AAPL", minute, close))
    assert engine.rules[r.pk].series.value == pytest.approx(
        talib.RSI(np.append(buckets, live[-1]), 6)[-1], rel=1e-9
    )
