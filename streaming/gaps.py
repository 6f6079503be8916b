"""Minutes the stream worker did not see completely, reported for backfill.

Two cases leave a minute incomplete: a subscription that starts mid-minute
(and, after a restart, every minute since the last stored bar), and a lost
session — from the minute the drop happened in (2 s earlier, for frames in
flight) to the minute data flows again. Those minutes are tainted in the
aggregator (their trade-built bars are never stored) and reported to the gap
ledger (`marketdata.gaps.gap_report`, which enqueues the REST backfill) once
they are over, so the backfill fetches finished bars. Equity minutes count
only while the market calendar says the market was open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from marketdata import calendar
from streaming.aggregator import MINUTE, MinuteAggregator, floor_minute

IN_FLIGHT = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class PendingGap:
    instrument_id: int
    symbol: str
    asset_class: str
    start: datetime
    end: datetime


class GapTracker:
    def __init__(self, *, aggregator: MinuteAggregator) -> None:
        self.aggregator = aggregator
        self.pending: list[PendingGap] = []

    def add(self, row: dict | None, start: datetime, end: datetime) -> None:
        if row is not None and end > start:
            self.pending.append(
                PendingGap(row["id"], row["symbol"], row["asset_class"], start, end)
            )

    def first_event(
        self, row: dict | None, ts: datetime, restart_start: datetime | None
    ) -> None:
        """The first event of a new subscription arrived at `ts`."""
        minute = floor_minute(ts)
        if row is not None:
            self.aggregator.taint([row["symbol"]], start=minute, end=minute + MINUTE)
        start = restart_start if restart_start is not None else minute
        self.add(row, min(start, minute), minute + MINUTE)

    def connection_lost(self, connection, symbols: list[str], last: datetime) -> None:
        """`connection` dropped; `last` is the event time of its newest data."""
        if connection.gap_start is None:
            connection.gap_start = floor_minute(last - IN_FLIGHT)
            self.aggregator.taint(symbols, start=connection.gap_start, end=None)

    def connection_back(self, connection, rows: list[dict], first_ts: datetime) -> None:
        """Data flows again on `connection`; `first_ts` is its first event time."""
        start, connection.gap_start = connection.gap_start, None
        end = floor_minute(first_ts) + MINUTE
        self.aggregator.close_open_taints([r["symbol"] for r in rows], end=end)
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
            if calendar.expected_minute_count(g.asset_class, g.start, g.end) > 0
        ]
