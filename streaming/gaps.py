"""Minutes the stream worker did not see completely, reported for backfill.

Two cases leave a minute incomplete: a subscription that starts mid-minute
(and, after a restart, every minute since the last stored bar), and a lost
session — from the minute the drop happened in (2 s earlier, for frames in
flight) to the minute data flows again. Those minutes are tainted in the
aggregator (their trade-built bars are never stored) and reported to the gap
ledger (`marketdata.gaps.gap_report`, which enqueues the REST backfill) once
they are over, so the backfill fetches finished bars. Equity minutes count
only while the market calendar says the market was open.

A malformed frame cannot be attributed to a symbol: every symbol of its
connection has the minutes around it tainted and reported. Reports that fail
(the database is away) stay pending and are retried; the ranges reported in
the last hours are remembered so the reconciliation (`StreamWorker`) knows
which missing minutes the ledger already has.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from core.minutes import MINUTE, floor_minute
from marketdata import calendar
from marketdata.providers import serves_extended_hours
from streaming.aggregator import MinuteAggregator

IN_FLIGHT = timedelta(seconds=2)
REMEMBER = timedelta(hours=6)  # reported ranges kept for `covers`


@dataclass(frozen=True, slots=True)
class PendingGap:
    instrument_id: int
    symbol: str
    asset_class: str
    start: datetime
    end: datetime
    extended: bool = False  # the provider serves pre- and post-market minutes


class GapTracker:
    def __init__(
        self, *, aggregator: MinuteAggregator, restart_window: timedelta = REMEMBER
    ) -> None:
        self.aggregator = aggregator
        self.restart_window = restart_window
        self.pending: list[PendingGap] = []
        self._known: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)

    def add(self, row: dict | None, start: datetime, end: datetime) -> None:
        """Queue [start, end) for `row`'s instrument, merged with a pending
        range it overlaps or touches (the ledger merges too: fewer rows)."""
        if row is None or end <= start:
            return
        extended = serves_extended_hours(row.get("provider"))
        self._queue(
            PendingGap(
                row["id"], row["symbol"], row["asset_class"], start, end, extended
            )
        )

    def _queue(self, new: PendingGap) -> None:
        self._known[new.symbol].append((new.start, new.end))
        for index, gap in enumerate(self.pending):
            if (
                gap.instrument_id == new.instrument_id
                and gap.start <= new.end
                and new.start <= gap.end
            ):
                self.pending[index] = replace(
                    gap, start=min(gap.start, new.start), end=max(gap.end, new.end)
                )
                return
        self.pending.append(new)

    def covers(self, symbol: str, minute: datetime) -> bool:
        """True when `minute` is queued for, or was recently reported to, the
        gap ledger."""
        return any(s <= minute < e for s, e in self._known.get(symbol, ()))

    def forget_before(self, at: datetime) -> None:
        horizon = at - REMEMBER
        for symbol in list(self._known):
            kept = [(s, e) for s, e in self._known[symbol] if e > horizon]
            if kept:
                self._known[symbol] = kept
            else:
                del self._known[symbol]

    def malformed(self, rows: list[dict], at: datetime) -> None:
        """A frame that could not be parsed arrived at `at` (event time): any
        symbol of its connection may have lost a trade or a bar there."""
        start = floor_minute(at - IN_FLIGHT)
        end = floor_minute(at) + MINUTE
        self.aggregator.taint([r["symbol"] for r in rows], start=start, end=end)
        for row in rows:
            self.add(row, start, end)

    def retry(self, gaps: list[PendingGap]) -> None:
        """Reports that failed go back to the queue (merged, so bounded)."""
        for gap in gaps:
            self._queue(gap)

    def first_event(
        self, row: dict | None, ts: datetime, restart_start: datetime | None
    ) -> None:
        """The first event of a new subscription arrived at `ts` (the feed's
        clock). `restart_start`: the minute after the last stored bar, or
        where a provider switch lost data; from there to this minute is the
        gap, unless it began more than `restart_window` before (older
        minutes are history's, and the sweep's)."""
        minute = floor_minute(ts)
        if row is not None:
            self.aggregator.taint([row["symbol"]], start=minute, end=minute + MINUTE)
        start = minute
        if restart_start is not None and restart_start >= minute - self.restart_window:
            start = min(restart_start, minute)
        self.add(row, start, minute + MINUTE)

    def connection_lost(self, connection, symbols: list[str], last: datetime) -> None:
        """`connection` dropped; `last` is the event time of its newest data."""
        if connection.gap_start is None:
            connection.gap_start = floor_minute(last - IN_FLIGHT)
            self.aggregator.taint(symbols, start=connection.gap_start, end=None)

    def connection_back(self, connection, rows: list[dict], first_ts: datetime) -> None:
        """Data flows again on `connection`; `first_ts` is its first event time."""
        end = floor_minute(first_ts) + MINUTE
        self.aggregator.close_open_taints([r["symbol"] for r in rows], end=end)
        self._end_gap(connection, rows, end)

    def connection_ended(self, connection, rows: list[dict], at: datetime) -> None:
        """Shutdown with `connection` still down: its gap ends with the last
        minute closed by `at`, so every closed minute the drop cut is in the
        ledger before the worker exits. The forming minute stays tainted (not
        stored): the next start's restart gap covers it, as it covers a
        forming minute stored at shutdown."""
        self._end_gap(connection, rows, floor_minute(at))

    def _end_gap(self, connection, rows: list[dict], end: datetime) -> None:
        """`connection`'s open gap, if any, ends at `end` for each of `rows`."""
        start, connection.gap_start = connection.gap_start, None
        if start is not None:
            for row in rows:
                self.add(row, start, end)

    def take_due(self, horizon: datetime) -> list[PendingGap]:
        """Gaps over by `horizon`, minus those with no market minute in them."""
        due = [g for g in self.pending if g.end <= horizon]
        if not due:
            return []
        self.pending = [g for g in self.pending if g.end > horizon]
        return [
            g
            for g in due
            if calendar.expected_minute_count(
                g.asset_class, g.start, g.end, extended=g.extended
            )
            > 0
        ]
