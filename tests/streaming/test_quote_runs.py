"""Quotes applied a symbol at a time in wire values (`streaming.quote_runs`)
leave the worker exactly as applying each `Quote` in turn does: the same
prices and sizes (digits included), quote and event times, counters, the
same instruments marked for publishing in the same order, the same feed
clock.

Random frames of quotes (and the odd trade between them) for a few symbols,
with prices drawn from a handful of values so that many quotes repeat the
prices in force, ints beside equal floats (`255` and `255.0` are equal
prices with different digits), times that sometimes go back, and a state
that may start from a restored snapshot (Decimals that no wire value made).
"""

from __future__ import annotations

import io
from decimal import Decimal

import msgpack
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketdata.providers import provider_class
from streaming.connection import FeedConnection
from streaming.publisher import Publisher
from streaming.state import InstrumentState
from streaming.worker import StreamWorker, WorkerOptions

SYMBOLS = ["AAPL", "MSFT", "SPY"]
BASE = 1_767_000_000  # seconds: a time in 2025
prices = st.sampled_from([255, 255.0, 255.01, 255.02, 255.1, 255.10000000000001])
sizes = st.sampled_from([1, 2, 100, 1.5])


@st.composite
def quote(draw):
    return {
        "T": "q",
        "S": draw(st.sampled_from(SYMBOLS)),
        "t": msgpack.Timestamp(
            BASE + draw(st.integers(0, 3)), draw(st.integers(0, 999_999_999))
        ),
        "bp": draw(prices),
        "bs": draw(sizes),
        "ap": draw(prices),
        "as": draw(sizes),
    }


trade = st.fixed_dictionaries({
    "T": st.just("t"), "S": st.sampled_from(SYMBOLS),
    "t": st.builds(msgpack.Timestamp, st.just(BASE + 2), st.integers(0, 10**9 - 1)),
    "p": prices, "s": sizes, "i": st.integers(0, 10**6),
})  # fmt: skip
frames = st.lists(
    st.lists(quote() | quote() | quote() | trade, min_size=1, max_size=12),
    min_size=1,
    max_size=8,
)


def worker_and_connection(restored: bool):
    worker = StreamWorker(options=WorkerOptions(), stdout=io.StringIO())
    worker.publisher = Publisher(layer=None, hz=0)
    provider = provider_class("simulator")()
    connection = FeedConnection(
        key="simulator:equity", provider=provider, asset_class="equity", sink=None
    )
    for i, symbol in enumerate(SYMBOLS):
        state = InstrumentState(
            symbol=symbol, instrument_id=i + 1, asset_class="equity",
            provider="simulator",
        )  # fmt: skip
        state.first_event_pending = False
        if restored:  # a snapshot's texts: no wire value made these Decimals
            state.restore(
                snapshot={"bid": "255.0", "ask": "255.010", "bid_size": "3"},
                session=None,
            )
        worker.states[symbol] = state
        worker.routes[symbol] = connection
    return worker, provider, connection


def observed(worker, connection, *, states: bool = True) -> list:
    stats = connection.stats
    out = [
        stats.by_kind["quote"], stats.out_of_order, stats.quotes_unchanged,
        worker.events_total, connection.last_event_ts, worker.event_clock,
        list(worker.publisher.dirty),
    ]  # fmt: skip
    if not states:  # reading a state converts what it holds in wire values
        return out
    for state in worker.states.values():
        for name in ("bid", "bid_size", "ask", "ask_size", "quote_ts", "ts", "last"):
            value = getattr(state, name)
            out.append(value.as_tuple() if isinstance(value, Decimal) else value)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames, st.booleans(), st.integers(1, 3))
def test_wire_values_leave_the_worker_as_quotes_one_by_one(messages, restored, every):
    """The states are read every `every` frames and at the end: runs in
    between are held in wire values across frames, trades between them
    convert what is held before they set the event time."""
    by_run = worker_and_connection(restored)
    one_by_one = worker_and_connection(restored)
    for n, frame_messages in enumerate(messages):
        frame = msgpack.packb(frame_messages)
        received_at = BASE + 5.0 + n
        worker, provider, connection = by_run
        worker.process(connection, received_at, provider.parse_feed(frame))
        worker, provider, connection = one_by_one
        worker.process(connection, received_at, provider.parse_frame(frame))
        read = n % every == 0 or n == len(messages) - 1
        assert observed(*by_run[::2], states=read) == observed(
            *one_by_one[::2], states=read
        )
        if n % 3 == 2:  # a publish in between
            for worker, _, _ in (by_run, one_by_one):
                worker.publisher.take_due(0.0)


def test_a_frame_of_quotes_is_one_run_and_only_the_last_change_is_converted():
    worker, provider, connection = worker_and_connection(restored=False)
    ts = [msgpack.Timestamp(BASE, n * 1000) for n in range(4)]
    frame = msgpack.packb([
        {"T": "q", "S": "AAPL", "t": ts[0], "bp": 1.5, "bs": 1, "ap": 1.6, "as": 2},
        {"T": "q", "S": "AAPL", "t": ts[2], "bp": 1.5, "bs": 9, "ap": 1.6, "as": 9},
        {"T": "q", "S": "AAPL", "t": ts[1], "bp": 1.4, "bs": 5, "ap": 1.7, "as": 5},
        {"T": "q", "S": "MSFT", "t": ts[3], "bp": 2, "bs": 3, "ap": 2.5, "as": 4},
    ])  # fmt: skip
    (run,) = provider.parse_feed(frame)
    assert run.kind == "quotes"
    worker.process(connection, BASE + 1.0, [run])
    aapl, msft = worker.states["AAPL"], worker.states["MSFT"]
    # the second repeats the prices (its sizes are not taken), the third is late
    assert (str(aapl.bid), str(aapl.bid_size), str(aapl.ask_size)) == ("1.5", "1", "2")
    assert aapl.quote_ts.microsecond == 2 and aapl.ts.microsecond == 0
    assert (str(msft.bid), str(msft.ask)) == ("2", "2.5")
    stats = connection.stats
    assert (stats.by_kind["quote"], stats.quotes_unchanged, stats.out_of_order) == (
        4, 1, 1,
    )  # fmt: skip
    assert worker.events_total == 4 and len(stats.lags) == 4
    assert list(worker.publisher.dirty) == ["AAPL", "MSFT"]


def test_printed_events_come_one_by_one_in_wire_order():
    worker, provider, connection = worker_and_connection(restored=False)
    lines: list[str] = []
    worker._print = lines.append  # what --print-events installs
    ts = msgpack.Timestamp(BASE, 0)
    frame = msgpack.packb([
        {"T": "q", "S": symbol, "t": ts, "bp": 1.5, "bs": 1, "ap": 1.6, "as": 2}
        for symbol in ("MSFT", "AAPL", "MSFT")
    ])  # fmt: skip
    worker.process(connection, BASE + 1.0, provider.parse_feed(frame))
    assert [orjson.loads(line)["symbol"] for line in lines] == ["MSFT", "AAPL", "MSFT"]
    assert all(orjson.loads(line)["kind"] == "quote" for line in lines)
    assert str(worker.states["AAPL"].bid) == "1.5" and worker.events_total == 3
