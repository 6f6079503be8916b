"""The suspect-tick test (streaming.suspect) on crafted trade sequences."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from streaming.suspect import SuspectConfig, SuspectFilter

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def at(i: float) -> datetime:
    return T0 + timedelta(seconds=i)


def warmed(seed: int = 1, n: int = 60, level: float = 100.0) -> SuspectFilter:
    """A filter that has seen `n` trades of a quiet market around `level`."""
    f = SuspectFilter(SuspectConfig())
    rng = random.Random(seed)
    for i in range(n):
        price = Decimal(f"{level + rng.gauss(0, 0.03):.2f}")
        assert f.trade(("warm", i), price, at(i * 0.1)) is None
    return f


def test_a_bad_print_is_held_then_rejected_by_the_next_normal_trade():
    f = warmed()
    assert f.trade("bad", Decimal("110.00"), at(10)) == []  # held
    assert f.counts() == {"suspect": 1, "confirmed": 0, "rejected": 0, "held": 1}
    assert f.trade("next", Decimal("100.01"), at(10.1)) is None  # passes itself
    assert f.counts() == {"suspect": 1, "confirmed": 0, "rejected": 1, "held": 0}


def test_a_real_jump_is_confirmed_by_the_next_trades_and_released_in_order():
    f = warmed()
    assert f.trade("j1", Decimal("105.00"), at(10)) == []
    assert f.trade("j2", Decimal("105.02"), at(10.1)) == []
    assert f.trade("j3", Decimal("104.99"), at(10.2)) == ["j1", "j2", "j3"]
    assert f.counts()["confirmed"] == 3 and f.counts()["held"] == 0
    # The new level is the reference now: the next trades pass at once.
    assert f.trade("after", Decimal("105.01"), at(10.3)) is None
    # ... and a return to the old level is now the suspect one.
    assert f.trade("back", Decimal("100.00"), at(10.4)) == []


def test_a_quote_midpoint_at_the_new_level_confirms_at_once():
    f = warmed()
    assert f.trade("j1", Decimal("95.00"), at(10)) == []
    # a quote still at the old level neither confirms nor rejects
    assert f.quote(Decimal("99.99"), Decimal("100.01")) is None
    assert f.quote(Decimal("94.98"), Decimal("95.02")) == ["j1"]
    assert f.counts() == {"suspect": 1, "confirmed": 1, "rejected": 0, "held": 0}


def test_held_trades_expire_after_max_hold_and_are_counted_as_rejected():
    f = warmed()
    f.trade("bad", Decimal("120.00"), at(10))
    assert f.expire(at(11)) == 0  # within max_hold (2 s)
    assert f.expire(at(12.5)) == 1
    assert f.counts() == {"suspect": 1, "confirmed": 0, "rejected": 1, "held": 0}
    f.trade("bad2", Decimal("80.00"), at(13))
    assert f.drop_held() == 1 and f.rejected == 2


def test_an_outlier_far_from_both_rejects_the_held_one_and_is_held_itself():
    f = warmed()
    f.trade("up", Decimal("110.00"), at(10))
    assert f.trade("down", Decimal("90.00"), at(10.1)) == []
    assert f.counts() == {"suspect": 2, "confirmed": 0, "rejected": 1, "held": 1}


def test_the_band_follows_the_instruments_volatility():
    calm, wild = warmed(), SuspectFilter(SuspectConfig())
    rng = random.Random(2)
    for i in range(60):  # 1 % noise instead of 0.03 %
        wild.trade(i, Decimal(f"{100 + rng.gauss(0, 1.0):.2f}"), at(i))
    # A 2 % move is a suspect for the calm instrument, ordinary for the wild one.
    assert calm.trade("x", Decimal("102.00"), at(100)) == []
    assert wild.trade("x", Decimal("102.00"), at(100)) is None


def test_the_floor_keeps_a_market_printing_one_price_from_flagging_the_next_tick():
    f = SuspectFilter(SuspectConfig())
    for i in range(60):
        f.trade(i, Decimal("50.00"), at(i))
    # MAD is 0; the floor is max(5 bp of 50 = 0.025, 2 ticks = 0.02) x 8 = 0.20
    assert f.trade("tick", Decimal("50.01"), at(61)) is None
    assert f.trade("far", Decimal("50.25"), at(62)) == []


def test_nothing_is_tested_before_min_trades():
    f = SuspectFilter(SuspectConfig())
    for i in range(5):
        assert f.trade(i, Decimal("100.00"), at(i)) is None
    assert f.trade("jump", Decimal("150.00"), at(6)) is None


def test_long_quiet_random_walks_have_no_suspects():
    """300,000 trades of quiet markets (0.02 % per trade, three seeds): the
    false-suspect rate at the default threshold, printed for the README."""
    suspects = trades = 0
    for seed in (7, 8, 9):
        f = SuspectFilter(SuspectConfig())
        rng = random.Random(seed)
        price = 100.0
        for i in range(100_000):
            price *= 1 + rng.gauss(0, 0.0002)
            f.trade(i, Decimal(f"{price:.2f}"), at(i * 0.01))
        suspects += f.suspect
        trades += 100_000
    print(f"false suspects: {suspects} in {trades} quiet trades")
    assert suspects == 0


@pytest.mark.parametrize(
    "bad",
    [dict(window=2), dict(threshold=0), dict(confirm_trades=1), dict(max_hold=0)],
)
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="suspect ticks"):
        SuspectConfig(**bad)
