from __future__ import annotations

from datetime import UTC, datetime

from simulator.tape import Tape


def _ns(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000_000


def test_last_quote_when_the_market_has_been_closed_for_a_while():
    # Saturday: the last NYSE trade was Friday's close, and no quote falls in
    # the minute before "now", so the quote is derived from the last trade.
    tape = Tape(seed=4242, hours="nyse", rate=5.0)
    now = _ns(datetime(2024, 3, 16, 15, 0, tzinfo=UTC))
    trade = tape.last_trade("AAPL", now)
    quote = tape.last_quote("AAPL", now)
    assert trade is not None and quote is not None
    ts, bid, bid_size, ask, ask_size = quote
    assert ts == trade[0] < now
    assert bid < ask and bid <= trade[1] <= ask + 0.01
    assert bid_size >= 1 and ask_size >= 1


def test_last_quote_of_a_crypto_pair_while_trading():
    tape = Tape(seed=4242, hours="always", rate=5.0)
    now = _ns(datetime(2024, 3, 16, 15, 0, 30, tzinfo=UTC))
    ts, bid, bid_size, ask, ask_size = tape.last_quote("BTC/USD", now)
    assert ts <= now and 0 < bid < ask and bid_size > 0 and ask_size > 0
