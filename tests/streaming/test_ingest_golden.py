"""A recorded feed's outputs stay bit-identical: every published document,
every stored minute bar and every event handed to the alert engine.

A fixed, seeded sequence of Alpaca msgpack frames (trades, quotes, minute,
corrected and daily bars, halts, duplicates, late and out-of-order ticks,
sub-microsecond timestamps, a New York day boundary, an outlier the
suspect-tick test holds) goes through the provider's `parse_feed` (quotes as
wire values, applied a symbol at a time: `streaming.quote_runs`) and the
worker's `process`, as `start_streams` runs them, and again through
`parse_frame` (every quote a `Quote`, applied one by one). The documents the publisher
would send (one per changed instrument per frame), the bars the aggregator
hands to storage and the alert engine's inputs are hashed per chunk of
frames; the digests in tests/fixtures/ingest/golden.json were recorded
before the hot path was reworked (issue 16), computed the slow way: dict
decoding, frozen dataclasses, Decimal state. A chunk that differs is named.

Regenerate (only for an intended change of output):
    TAPELINE_GOLDEN_WRITE=1 pytest tests/streaming/test_ingest_golden.py
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgpack
import orjson
import pytest

from marketdata.providers import provider_class
from streaming.connection import FeedConnection
from streaming.publisher import Publisher
from streaming.state import InstrumentState
from streaming.worker import StreamWorker, WorkerOptions

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ingest" / "golden.json"
EQUITIES = ["AAPL", "MSFT", "NVDA", "SPY", "TSLA", "AMZN"]
CRYPTO = ["BTC/USD"]
FRAMES = 900
CHUNK = 100
# 04:57:30 UTC: New York midnight (a new session) falls inside the feed.
START = datetime(2026, 3, 3, 4, 57, 30, tzinfo=UTC)


def _stamp(ts: datetime, nanos: int) -> msgpack.Timestamp:
    seconds = int(ts.timestamp())
    return msgpack.Timestamp(seconds, ts.microsecond * 1000 + nanos)


def feed() -> list[bytes]:
    """The frames, the same on every run (seeded)."""
    rnd = random.Random(16)
    price = {s: 100.0 + 37 * i for i, s in enumerate(EQUITIES)}
    price["BTC/USD"] = 64_000.0
    trade_id = 0
    frames = []
    for n in range(FRAMES):
        now = START + timedelta(milliseconds=350 * n)
        messages = []
        for _ in range(rnd.randint(1, 14)):
            symbol = rnd.choice(EQUITIES + CRYPTO)
            crypto = symbol in CRYPTO
            tick = 0.5 if crypto else (0.0001 if rnd.random() < 0.05 else 0.01)
            price[symbol] = max(1.0, price[symbol] + tick * rnd.randint(-3, 3))
            p = round(price[symbol], 1 if crypto else 4)
            ts = now + timedelta(microseconds=rnd.randint(0, 349_999))
            if rnd.random() < 0.04:  # late: up to two minutes back
                ts -= timedelta(seconds=rnd.randint(1, 120))
            stamp = _stamp(ts, rnd.randint(0, 999))
            if rnd.random() < 0.45:
                trade_id += 1
                tid = trade_id if rnd.random() > 0.03 else max(1, trade_id - 2)
                size = round(rnd.random() * 2, 6) if crypto else rnd.randint(1, 500)
                if rnd.random() < 0.004 and not crypto:
                    p = round(p * 1.4, 2)  # an outlier: held as suspect
                message = {"T": "t", "S": symbol, "t": stamp, "p": p, "s": size}
                message.update(i=tid, x="V", c=["@"] if rnd.random() < 0.5 else [])
            else:
                spread = tick * rnd.randint(1, 3)
                message = {
                    "T": "q", "S": symbol, "t": stamp,
                    "bp": round(p - spread, 4), "bs": rnd.randint(1, 9),
                    "ap": round(p + spread, 4), "as": rnd.randint(1, 9),
                    "bx": "V", "ax": "Q",
                }  # fmt: skip
                if rnd.random() < 0.2 and messages and messages[-1]["T"] == "q":
                    message = dict(messages[-1], t=stamp)  # unchanged quote
            messages.append(message)
        if n % 40 == 39:  # the provider's minute bar for SPY, sometimes corrected
            minute = (now - timedelta(minutes=1)).replace(second=0, microsecond=0)
            messages.append({
                "T": "b" if n % 80 == 39 else "u", "S": "SPY",
                "t": _stamp(minute, 0), "o": 211.5, "h": 212.25, "l": 210.75,
                "c": round(price["SPY"], 2), "v": 1200 + n, "vw": 211.4321,
                "n": 17,
            })  # fmt: skip
        if n % 150 == 75:  # a daily bar for TSLA
            messages.append({
                "T": "d", "S": "TSLA", "t": _stamp(now.replace(hour=0, minute=0,
                second=0, microsecond=0), 0), "o": 285.0, "h": 290.5, "l": 280.25,
                "c": round(price["TSLA"], 2), "v": 99_000 + n, "vw": 286.5, "n": 900,
            })  # fmt: skip
        if n in (300, 420):  # NVDA halted, then resumed: a dict-path frame
            messages.append({
                "T": "s", "S": "NVDA", "t": _stamp(now, 0),
                "sc": "H" if n == 300 else "T", "sm": "Trading halt",
                "rc": "T1", "rm": "News pending", "z": "C",
            })  # fmt: skip
        frames.append(msgpack.packb(messages, datetime=False))
    return frames


def _value(value):
    if isinstance(value, Decimal):
        return ["D", str(value)]
    if isinstance(value, datetime):
        return ["T", value.isoformat()]
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    return value


FIELDS = {
    "trade": "symbol ts price size provider trade_id exchange conditions".split(),
    "bar": (
        "symbol ts open high low close volume provider timeframe vwap "
        "trade_count updated closed"
    ).split(),
    "status": "symbol ts provider halted code message reason".split(),
}


class AlertRecorder:
    """The alert engine's side of the bridge: records what it is handed."""

    def __init__(self) -> None:
        self.seen: list = []

    def on_event(self, event) -> None:
        fields = {n: _value(getattr(event, n)) for n in FIELDS[event.kind]}
        self.seen.append([event.kind, fields])


def run_feed(parse: str = "parse_feed") -> list[dict]:
    """Per chunk of frames: the documents, bars and alert inputs produced."""
    worker = StreamWorker(options=WorkerOptions(), stdout=io.StringIO())
    worker.publisher = publisher = Publisher(layer=None, hz=0)
    recorder = AlertRecorder()
    worker.alert_bridge.on_event = recorder.on_event
    worker.alert_engine = object()  # not None: process hands events over
    provider = provider_class("simulator")()
    connection = FeedConnection(
        key="simulator:equity", provider=provider, asset_class="equity", sink=None
    )
    for i, symbol in enumerate(EQUITIES + CRYPTO):
        state = InstrumentState(
            symbol=symbol,
            instrument_id=i + 1,
            asset_class="crypto" if symbol in CRYPTO else "equity",
            provider="simulator",
        )
        state.first_event_pending = False
        worker.states[symbol] = state
        worker.routes[symbol] = connection
    chunks, out = [], {"documents": [], "bars": [], "alerts": []}
    for n, frame in enumerate(feed()):
        received_at = START.timestamp() + 0.35 * n + 0.2
        events = getattr(provider, parse)(frame)
        worker.process(connection, received_at, events)
        for state in publisher.take_due(0.0):
            state.seq += 1
            out["documents"].append(state.document())
        for closed in worker.aggregator.due(now=worker.event_clock):
            out["bars"].append(_bar(closed))
        if n % CHUNK == CHUNK - 1:
            if n == FRAMES - 1:
                worker.suspects_expire(final=True)
                out["bars"] += [
                    _bar(c)
                    for c in worker.aggregator.due(now=worker.event_clock, final=True)
                ]
            out["alerts"], recorder.seen = recorder.seen, []
            chunks.append(out)
            out = {"documents": [], "bars": [], "alerts": []}
    return chunks


def _bar(closed) -> list:
    bar = closed.bar
    return [
        closed.symbol,
        _value(bar.ts),
        *(str(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume)),
        _value(bar.computed_vwap()),
        bar.trade_count,
        bar.from_provider,
    ]


def digest(chunk: dict) -> str:
    return hashlib.sha256(orjson.dumps(chunk, option=orjson.OPT_SORT_KEYS)).hexdigest()


@pytest.fixture(params=["night", "trading hours"])
def wall_clock(request, monkeypatch):
    """The day the test runs on: the output depends only on the feed, not on
    whether the wall clock's market is open (a resumed halt's freshness once
    read it)."""
    import streaming.worker
    from tests.clock import fixed_datetime

    wall = {
        "night": datetime(2026, 12, 6, 10, 24, tzinfo=UTC),  # a Sunday
        "trading hours": datetime(2026, 12, 7, 15, 0, tzinfo=UTC),  # a Monday
    }[request.param]
    monkeypatch.setattr(streaming.worker, "datetime", fixed_datetime(wall))
    return wall


@pytest.mark.parametrize("parse", ["parse_feed", "parse_frame"])
def test_a_recorded_feed_gives_the_same_documents_bars_and_alert_inputs(
    parse, wall_clock
):
    chunks = run_feed(parse)
    got = {
        "digests": [digest(c) for c in chunks],
        "counts": [{k: len(v) for k, v in c.items()} for c in chunks],
    }
    if os.environ.get("TAPELINE_GOLDEN_WRITE"):
        FIXTURE.write_text(orjson.dumps(got, option=orjson.OPT_INDENT_2).decode())
    expected = orjson.loads(FIXTURE.read_text())
    # the feed exercises what it should (not an empty run that trivially agrees)
    totals = {k: sum(c[k] for c in got["counts"]) for k in got["counts"][0]}
    assert totals["documents"] > 3000 and totals["bars"] > 30
    assert totals["alerts"] > 2000
    for n, (mine, theirs) in enumerate(
        zip(got["digests"], expected["digests"], strict=True)
    ):
        assert (n, got["counts"][n]) == (n, expected["counts"][n])
        assert mine == theirs, f"frames {n * CHUNK}-{(n + 1) * CHUNK - 1} differ"
