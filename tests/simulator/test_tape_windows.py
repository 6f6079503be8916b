"""A tick's window reads the cached tables of the minute's quotes by
bisection (`simulator.tape._quote_table`): windows that tile a stretch of
time give exactly the events of the whole stretch, each once, in order."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.tape import MINUTE_NS, Tape

START = 1_710_500_000 * 1_000_000_000
COLUMNS = (
    "trade_ts", "trade_price", "trade_size", "trade_buy", "trade_id",
    "quote_ts", "bid", "bid_size", "ask", "ask_size",
)  # fmt: skip


def _columns(window) -> list[list]:
    return [getattr(window, name).tolist() for name in COLUMNS]


def _tiled(tape: Tape, symbol: str, cuts: list[int]) -> list[list]:
    """The columns of the windows between consecutive cuts, joined."""
    pieces = [_columns(tape.window(symbol, a, b)) for a, b in pairwise(cuts)]
    return [sum((piece[i] for piece in pieces), []) for i in range(len(COLUMNS))]


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([0.5, 5.0, 20.0, 150.0]),
    symbol=st.sampled_from(["AAPL", "BTC/USD"]),
    offset=st.integers(0, 3 * MINUTE_NS),
    steps=st.lists(
        st.one_of(st.integers(0, 40_000_000), st.integers(0, 2 * MINUTE_NS)),
        min_size=1,
        max_size=12,
    ),
)
def test_windows_that_tile_a_stretch_give_its_events_once_in_order(
    rate, symbol, offset, steps
):
    tape = Tape(seed=4242, hours="always", rate=rate)
    t0 = START + offset
    cuts = [t0]
    for step in steps:
        cuts.append(cuts[-1] + step)
    whole = _columns(tape.window(symbol, cuts[0], cuts[-1]))
    assert _tiled(tape, symbol, cuts) == whole
    quote_ts = np.array(whole[COLUMNS.index("quote_ts")])
    assert (np.diff(quote_ts) >= 0).all()
    assert ((quote_ts > cuts[0]) & (quote_ts <= cuts[-1])).all()


def test_a_window_is_its_own_copy_of_the_cached_quotes():
    tape = Tape(seed=4242, hours="always", rate=50.0)
    first = tape.window("AAPL", START, START + 2_000_000_000)
    before = _columns(first)
    assert len(first.bid) > 10
    first.bid[:] = 0.0
    first.trade_price[:] = 0.0
    assert _columns(tape.window("AAPL", START, START + 2_000_000_000)) == before


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([5.0, 150.0]),
    picks=st.lists(st.tuples(st.floats(0, 1), st.sampled_from([-1, 0])), max_size=8),
)
def test_windows_cut_at_event_times_keep_every_event_once(rate, picks):
    tape = Tape(seed=4242, hours="always", rate=rate)
    t0, t1 = START, START + MINUTE_NS + 7_000_000_000
    whole = tape.window("AAPL", t0, t1)
    times = sorted(set(whole.quote_ts.tolist()) | set(whole.trade_ts.tolist()))
    cuts = sorted({t0, t1} | {times[int(f * (len(times) - 1))] + d for f, d in picks})
    assert _tiled(tape, "AAPL", cuts) == _columns(whole)
