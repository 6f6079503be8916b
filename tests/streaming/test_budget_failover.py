"""Plan budgets and the failover router as pure rules (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streaming.budget import LearnedLimit, allocate, ranked
from streaming.failover import Router


def row(symbol, *, position=False, alert=False, holders=0, viewed=None, ac="equity"):
    viewed_at = None if viewed is None else datetime.fromtimestamp(viewed, UTC)
    return {
        "symbol": symbol,
        "asset_class": ac,
        "position": position,
        "alert": alert,
        "holders": holders,
        "viewed_at": viewed_at,
    }


def test_priority_is_positions_alerts_holders_then_recently_viewed():
    rows = [
        row("AAA", holders=1),
        row("BBB", holders=1, viewed=200),
        row("CCC", holders=3),
        row("DDD", alert=True),
        row("ZZZ", position=True),
        row("EEE", holders=1, viewed=100),
    ]
    assert [r["symbol"] for r in ranked(rows)] == [
        "ZZZ",
        "DDD",
        "CCC",
        "BBB",
        "EEE",
        "AAA",
    ]


def test_allocation_fills_the_budget_then_spills_to_the_next_provider():
    rows = [row(f"S{i:02}", holders=1) for i in range(5)] + [row("BTC", ac="crypto")]
    limits = {"alpaca": 2, "finnhub": 2}
    allocation = allocate(
        rows,
        route={"equity": ["alpaca", "finnhub"], "crypto": []},
        limit_of=lambda name, ac: ((name, ac), limits[name]),
    )
    assert allocation.streaming == {
        "S00": "alpaca",
        "S01": "alpaca",
        "S02": "finnhub",
        "S03": "finnhub",
    }
    assert allocation.over_budget == {"S04": "alpaca"}
    assert allocation.no_provider == {"BTC"}


def test_a_budget_smaller_than_the_positions_keeps_positions_first():
    rows = [row("W1", holders=5)] + [row(f"P{i}", position=True) for i in range(3)]
    allocation = allocate(
        rows, route={"equity": ["alpaca"]}, limit_of=lambda n, a: ((n, a), 2)
    )
    assert set(allocation.streaming) == {"P0", "P1"}
    assert set(allocation.over_budget) == {"P2", "W1"}


@pytest.mark.parametrize("real", [1, 7, 30, 31, 64])
def test_refusals_teach_the_real_limit_by_halving(real):
    """A provider refusing whole requests over `real` symbols, a worker that
    wants 100 and was configured with no limit: it settles on `real`."""
    limit, subscribed = LearnedLimit(), 0
    for _ in range(20):
        want = 100 if limit.limit() is None else limit.limit()
        if want > subscribed:
            if want > real:
                limit.refused(want)  # the request changes nothing
            else:
                subscribed = want
                limit.accepted(subscribed)
        else:
            subscribed = want
    assert limit.limit() == real == subscribed


def test_failover_after_the_grace_and_back_after_the_hold():
    router = Router(chains={"crypto": ["alpaca", "binance"]}, switch_after=5, hold=60)
    assert router.usable("crypto", now=0) == ["alpaca", "binance"]
    router.observe("alpaca", False, ["silent"], now=10)
    assert router.usable("crypto", now=12) == ["alpaca", "binance"]  # a blip
    assert router.usable("crypto", now=16) == ["binance"]
    router.observe("alpaca", True, [], now=20)
    assert router.usable("crypto", now=50) == ["binance"]  # holding
    assert router.usable("crypto", now=81) == ["alpaca", "binance"]


def test_a_provider_failing_again_and_again_is_benched():
    router = Router(chains={"crypto": ["alpaca", "binance"]}, switch_after=1, hold=1)
    now = 0.0
    for _ in range(3):
        router.observe("alpaca", False, ["down"], now=now)
        router.usable("crypto", now=now + 2)  # fails over
        router.observe("alpaca", True, [], now=now + 3)
        now += 10
    assert router.usable("crypto", now=now) == ["binance"]
    assert router.health["alpaca"].benched_until >= now + 200
    assert router.usable("crypto", now=now + 400) == ["alpaca", "binance"]


def test_when_nothing_is_usable_instruments_wait_on_a_healthy_one_or_the_first():
    router = Router(chains={"crypto": ["alpaca", "binance"]}, switch_after=0, hold=0)
    router.observe("alpaca", False, ["down"], now=0)
    router.observe("binance", False, ["down"], now=0)
    assert router.usable("crypto", now=1) == ["alpaca"]
