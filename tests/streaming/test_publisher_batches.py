"""The publisher sends due updates in batches: nothing goes out before one is
due, and then updates due within `EARLY` of an interval go with it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.publisher import Publisher
from streaming.state import InstrumentState


def states(*symbols):
    return [
        InstrumentState(symbol=s, instrument_id=i, asset_class="equity", provider="x")
        for i, s in enumerate(symbols)
    ]


def test_updates_due_within_half_an_interval_join_the_batch():
    # Half an interval: at most 20 batches a second at 10 Hz, so a browser
    # client gets at most 20 frames a second from one worker.
    publisher = Publisher(layer=None, hz=10)  # interval 0.1 s, slack 0.1 s
    a, b, c = states("A", "B", "C")
    publisher.tat.update(A=0.3, B=0.34, C=0.4)
    for state in (a, b, c):
        publisher.mark(state)
    assert publisher.take_due(0.15) == []  # none due: B is not sent early alone
    assert publisher.next_due() == pytest.approx(0.2)
    assert publisher.take_due(0.2) == [a, b]  # A due, B within 50 ms of its slot
    # the rate still counts from each one's own slot
    assert publisher.tat == pytest.approx({"A": 0.4, "B": 0.44, "C": 0.4})
    assert list(publisher.dirty) == ["C"]


def test_a_quiet_instrument_goes_out_at_once():
    publisher = Publisher(layer=None, hz=10)
    (a,) = states("A")
    publisher.mark(a)
    assert publisher.take_due(5.0) == [a]
    publisher.mark(a)
    assert publisher.take_due(5.0) == [a]  # the burst of two
    publisher.mark(a)
    assert publisher.take_due(5.01) == []
    assert publisher.take_due(5.1) == [a]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["mark", "take", "forget"]), st.sampled_from("ABCD")),
        max_size=40,
    )
)
def test_the_next_due_time_follows_marks_sends_and_forgotten_instruments(steps):
    """The earliest slot is kept between frames, not scanned each time: it
    must still be the earliest of what is dirty, whatever came before."""
    publisher = Publisher(layer=None, hz=10)
    by_symbol = {s.symbol: s for s in states(*"ABCD")}
    now = 0.0
    for action, symbol in steps:
        if action == "mark":
            publisher.mark(by_symbol[symbol])
        elif action == "take":
            now += 0.03
            publisher.take_due(now)
        else:
            publisher.forget(symbol)
        slots = [publisher.tat.get(s, 0.0) for s in publisher.dirty]
        expected = min(slots) - publisher._slack() if slots else None
        assert publisher.next_due() == expected
