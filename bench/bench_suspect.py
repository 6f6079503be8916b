"""Anomaly detection's cost: the suspect-tick test on the ingest hot path
(`StreamWorker.process` with and without it, same events), the test alone
per trade, and the market-anomaly detector per instrument-minute.

    python -m bench.bench_suspect [--quick]

In-process and single-threaded (no sockets, no database), CPU time of the
process (steadier than wall time on a busy machine): the figure is the
worker loop's own CPU per event, the part the suspect test adds to. Events:
50 instruments, a quiet random walk (0.02 % per trade) with two quotes per
three trades, in batches of 20 (the simulator's send batching), and 1 trade
in 2,000 a bad print (5 %, the next trades do not confirm it).
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

N_SYMBOLS = 50
BATCH = 20


def setup() -> None:
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    import django

    django.setup()


def feed(n_events: int, seed: int = 1) -> list[list]:
    from marketdata.events import Quote, Trade

    rng = random.Random(seed)
    prices = {f"S{i:02d}": 100.0 + i for i in range(N_SYMBOLS)}
    start = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    events = []
    for i in range(n_events):
        symbol = f"S{rng.randrange(N_SYMBOLS):02d}"
        ts = start + timedelta(milliseconds=i)
        price = prices[symbol] = prices[symbol] * (1 + rng.gauss(0, 0.0002))
        if i % 3 == 2:
            bid, ask = Decimal(f"{price - 0.01:.2f}"), Decimal(f"{price + 0.01:.2f}")
            events.append(
                Quote(symbol=symbol, ts=ts, bid_price=bid, bid_size=Decimal(1),
                      ask_price=ask, ask_size=Decimal(1), provider="bench")
            )  # fmt: skip
            continue
        if rng.random() < 1 / 2000:
            price *= 1.05
        events.append(
            Trade(symbol=symbol, ts=ts, price=Decimal(f"{price:.2f}"),
                  size=Decimal(1), provider="bench", trade_id=str(i))
        )  # fmt: skip
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


def worker_with(suspect: bool):
    from marketdata.providers import provider_class
    from streaming.connection import FeedConnection
    from streaming.publisher import Publisher
    from streaming.state import InstrumentState
    from streaming.worker import StreamWorker, WorkerOptions

    worker = StreamWorker(options=WorkerOptions(suspect=suspect, anomalies=False))
    worker.publisher = Publisher(layer=None, hz=10)
    worker.alert_engine = None
    connection = FeedConnection(
        key="bench", provider=provider_class("simulator")(), asset_class="equity",
        sink=worker.sink,
    )  # fmt: skip
    for i in range(N_SYMBOLS):
        symbol = f"S{i:02d}"
        state = InstrumentState(
            symbol=symbol, instrument_id=i, asset_class="equity", provider="bench"
        )
        state.first_event_pending = False
        worker.states[symbol] = state
        worker.routes[symbol] = connection
    return worker, connection


def run_process(batches, suspect: bool) -> tuple[float, object]:
    worker, connection = worker_with(suspect)
    process = worker.process
    started = time.process_time()
    for batch in batches:
        process(connection, 0.0, batch)
    return time.process_time() - started, worker


def main(argv: list[str]) -> int:
    setup()
    quick = "--quick" in argv
    n_events = 60_000 if quick else 300_000
    rounds = 3 if quick else 7
    batches = feed(n_events)
    off, on = [], []
    worker = None
    for _ in range(rounds):  # alternate, keep the best of each
        off.append(run_process(batches, False)[0])
        elapsed, worker = run_process(batches, True)
        on.append(elapsed)
    per_off = min(off) / n_events * 1e9
    per_on = min(on) / n_events * 1e9
    counts = {"suspect": 0, "confirmed": 0, "rejected": 0}
    for state in worker.states.values():
        for name in counts:
            counts[name] += state.suspect.counts()[name] if state.suspect else 0
    print(f"ingest (StreamWorker.process), {n_events:,} events, best of {rounds}:")
    print(f"  suspect test off: {per_off:8.0f} ns/event")
    print(f"  suspect test on:  {per_on:8.0f} ns/event  "
          f"(+{per_on - per_off:.0f} ns, x{per_on / per_off:.3f})")  # fmt: skip
    print(f"  held out: {counts}")

    from streaming.suspect import SuspectConfig, SuspectFilter

    rng = random.Random(2)
    prices = [Decimal(f"{100 * (1 + rng.gauss(0, 0.0005)):.2f}") for _ in range(10000)]
    ts = datetime(2026, 3, 2, tzinfo=UTC)
    best = float("inf")
    for _ in range(rounds):
        test = SuspectFilter(SuspectConfig())
        trade = test.trade
        started = time.process_time()
        for i, price in enumerate(prices):
            trade(i, price, ts)
        best = min(best, time.process_time() - started)
    print(f"suspect test alone: {best / len(prices) * 1e9:.0f} ns/trade")

    from marketdata.anomalies import anomalies_scan

    class Minute:
        __slots__ = ("ts", "close", "volume", "trade_count")

    minutes = []
    price = 100.0
    for i in range(20 * 1440 if not quick else 5 * 1440):
        m = Minute()
        price *= 1 + rng.gauss(0, 0.0005)
        m.ts, m.close = ts + timedelta(minutes=i), price
        m.volume, m.trade_count = rng.gammavariate(4, 250), 40
        minutes.append(m)
    started = time.process_time()
    anomalies_scan(minutes, symbol="X")
    elapsed = time.process_time() - started
    print(
        f"anomaly detector: {elapsed / len(minutes) * 1e6:.1f} µs per "
        f"instrument-minute ({len(minutes):,} minutes; 1,000 instruments "
        f"= {elapsed / len(minutes) * 1e3 * 1000:.0f} ms a minute)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
