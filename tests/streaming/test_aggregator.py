from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from streaming.aggregator import MinuteAggregator

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_trades_become_minute_bars_stored_after_the_grace_period():
    agg = MinuteAggregator(grace=2)
    agg.add_trade("AAPL", at(1), D("10.00"), D("5"))
    agg.add_trade("AAPL", at(20), D("10.50"), D("1"))
    agg.add_trade("AAPL", at(30), D("9.80"), D("2"))
    agg.add_trade("AAPL", at(59.9), D("10.10"), D("2"))
    agg.add_trade("AAPL", at(61), D("10.20"), D("1"))  # next minute
    assert agg.due(now=at(61)) == []  # within grace: late trades may still come
    agg.add_trade("AAPL", at(59.95), D("10.00"), D("10"))  # late, same minute
    [closed] = agg.due(now=at(62.5))
    bar = closed.bar
    assert (bar.ts, bar.open, bar.high, bar.low, bar.close) == (
        T0,
        D("10.00"),
        D("10.50"),
        D("9.80"),
        D("10.00"),
    )
    assert bar.volume == D("20") and bar.trade_count == 5
    assert bar.computed_vwap() == (
        (D("50") + D("10.5") + D("19.6") + D("20.2") + D("100")) / D("20")
    ).quantize(D("0.00000001"))
    assert agg.due(now=at(62.6)) == []  # stored once


def test_a_late_trade_after_storage_re_stores_the_corrected_bar():
    agg = MinuteAggregator(grace=1)
    agg.add_trade("X", at(5), D("1"), D("1"))
    assert len(agg.due(now=at(61.5))) == 1
    agg.add_trade("X", at(50), D("2"), D("1"))
    [again] = agg.due(now=at(62))
    assert again.bar.high == D("2") and again.bar.volume == D("2")


def test_provider_bars_replace_trade_bars_and_corrections_replace_again():
    agg = MinuteAggregator(grace=1)
    agg.add_trade("X", at(5), D("1"), D("1"))
    agg.apply_bar(
        "X",
        ts=T0,
        open=D("1"),
        high=D("3"),
        low=D("0.5"),
        close=D("2"),
        volume=D("9"),
        vwap=D("1.7"),
        trade_count=4,
    )
    [stored] = agg.due(now=at(70))
    assert stored.bar.from_provider and stored.bar.high == D("3")
    # from now on trade-built bars of X are not stored (the provider's are)
    agg.add_trade("X", at(65), D("5"), D("1"))
    assert agg.due(now=at(130)) == []
    agg.apply_bar(
        "X",
        ts=T0,
        open=D("1"),
        high=D("4"),
        low=D("0.5"),
        close=D("2"),
        volume=D("10"),
        vwap=D("1.8"),
        trade_count=5,
    )
    [corrected] = agg.due(now=at(131))
    assert corrected.bar.high == D("4") and corrected.bar.volume == D("10")


def test_forming_provider_bars_are_not_stored():
    agg = MinuteAggregator(grace=1)
    agg.apply_bar(
        "BTC/USD",
        ts=T0,
        open=D("1"),
        high=D("1"),
        low=D("1"),
        close=D("1"),
        volume=D("1"),
        vwap=None,
        trade_count=1,
        closed=False,
    )
    assert agg.due(now=at(120)) == []


def test_tainted_minutes_are_left_to_the_backfill():
    agg = MinuteAggregator(grace=1)
    for second in (5, 65, 125, 185):
        agg.add_trade("X", at(second), D("1"), D("1"))
    agg.taint(["X"], start=at(70), end=None)  # connection dropped in minute 1
    agg.close_open_taints(["X"], end=T0 + timedelta(minutes=3))  # back in minute 2
    stored = [c.bar.ts for c in agg.due(now=at(300))]
    assert stored == [T0, T0 + timedelta(minutes=3)]


def test_final_flush_includes_the_forming_minute():
    agg = MinuteAggregator(grace=2)
    agg.add_trade("X", at(5), D("1"), D("1"))
    assert agg.due(now=at(10)) == []
    assert [c.bar.ts for c in agg.due(now=at(10), final=True)] == [T0]
