"""A frame's quotes applied a symbol at a time, in wire values (issue 16).

A provider's `parse_feed` may hand over a stretch of consecutive quotes as a
`QuoteRun` (`marketdata.providers.alpaca_wire`): per symbol, each quote's
event time in integer microseconds and its prices and sizes as sent. Applying
them one by one would convert every quote into a `Quote` of datetimes and
Decimals, though most are superseded within the same frame. Here each
symbol's quotes are compared in wire values, with the same outcome as
`InstrumentState.apply_quote` on each in turn:

- older than the newest quote applied before: out of order, skipped;
- same bid and ask price as the quote in force: unchanged, only its time
  counts (the sizes stay those of the quote that set the prices);
- otherwise it is the quote in force.

Nothing is converted here: the state holds the quote in force in wire
values (`InstrumentState.wire`, `unconverted`) and converts it when it is
read, usually once per published document rather than once per frame. Wire
values compare as their Decimals do: two floats are equal exactly when their
shortest texts are, an int equals a float exactly when their Decimals are
equal. Where the state holds no wire values (a quote applied another way, a
restored snapshot), the time is converted and the first comparison is made
in Decimals.

A run with a symbol that needs more than a comparison goes event by event,
in wire order, through the worker's own path: the first event of a
subscription, a suspect-tick test holding trades (quotes may release them), a
symbol not routed to this connection. While events are printed
(`--print-events`), the worker hands every run to that path itself.
tests/streaming/test_ingest_golden.py holds both paths to the same output.
"""

from __future__ import annotations

from datetime import timedelta
from operator import itemgetter

from marketdata.providers.timeparse import EPOCH, price_to_decimal

_MICROSECOND = timedelta(microseconds=1)
_NOT_KNOWN = object()  # wire prices of the quote in force: compare Decimals
_BEFORE_ALL = -(1 << 70)  # microseconds before any datetime
_TIME_ONLY = (None, None)  # only the quote's time is new


def apply_quote_run(worker, connection, received_at: float, run) -> tuple:
    """Apply `run` to the worker's states; returns the event times of its
    first and last quote for a routed symbol (None, None without one)."""
    states, routes = worker.states, worker.routes
    targets = []
    for symbol, quotes in run.groups.items():
        state = states.get(symbol)
        if (
            state is None
            or routes.get(symbol) is not connection
            or state.first_event_pending
            or (state.suspect is not None and state.suspect.held)
        ):  # one by one, in wire order
            return worker.apply_events(connection, received_at, run.expand())
        targets.append((state, quotes))
    stats = connection.stats
    mark = worker.publisher.mark
    lag = stats.lags.append
    count = out_of_order = unchanged = 0
    changed = []
    for state, quotes in targets:
        count += len(quotes)
        state.last_event_at = received_at
        wire = state.wire
        if wire is not None:
            newest, bid, ask = wire
        else:
            quote_ts = state.quote_ts
            newest = (
                _BEFORE_ALL if quote_ts is None else (quote_ts - EPOCH) // _MICROSECOND
            )
            bid = ask = _NOT_KNOWN
        before = newest
        in_force = None
        for at, us, quote in quotes:
            lag(received_at - us / 1_000_000)
            if us < newest:
                out_of_order += 1
                continue
            newest = us
            bp, ap = quote.bp, quote.ap
            if bp == bid and ap == ask:
                unchanged += 1
                continue
            if bid is _NOT_KNOWN and (
                price_to_decimal(bp) == state.bid and price_to_decimal(ap) == state.ask
            ):
                bid, ask = bp, ap
                unchanged += 1
                continue
            if in_force is None:
                changed.append((at, state))
            bid, ask, in_force, applied_at = bp, ap, quote, us
        if in_force is not None:
            state.unconverted = (in_force, applied_at)
            state.received_at = received_at
        elif newest != before and state.unconverted is None:
            state.unconverted = _TIME_ONLY
        state.wire = (newest, bid, ask)
    changed.sort(key=itemgetter(0))
    for _, state in changed:  # in the order the quotes changed them
        mark(state)
    stats.by_kind["quote"] += count
    stats.out_of_order += out_of_order
    stats.quotes_unchanged += unchanged
    return run.first_ts, run.last_ts
