"""The stream worker's promise: every closed minute ends stored or in the gap ledger.

`MinuteLedger` is the part of `StreamWorker` that keeps it:

- `store`: closed minutes go to PostgreSQL in one batch per second. A failed
  write keeps them in memory (`MinuteAggregator`, up to `unstored_minutes` per
  instrument); the oldest past that bound are written to the gap ledger
  instead, as soon as the database answers again.
- `report_gaps`: minutes the worker missed (drops, restarts, malformed frames,
  overflow, reconciliation) are written to the ledger once they are over; a
  write that fails stays queued and is retried every second until it succeeds.
- `reconcile`: `settle` seconds after each minute closes, every streamed
  instrument whose market is open (regular session for equities, always for
  crypto) must have that minute stored, waiting to be stored, or in the ledger;
  a minute that has none of these (a provider bar that never came, a frame
  lost without a trace) is queued for the ledger.
- `sweep`: every few minutes the stored minutes of the last hours are
  compared with the calendar (extended hours where the provider serves them)
  and any hole, whatever caused it, is reported (`marketdata.sweep`).

Database outages are logged through the worker's `db_outage`
(`core.outage.Outage`): one line when one starts, a reminder a minute, one
with its duration when it ends, however many parts notice it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from core.minutes import MINUTE, floor_minute
from marketdata import calendar
from marketdata.providers import serves_extended_hours
from streaming import services

logger = logging.getLogger(__name__)

RECONCILE_MAX = timedelta(hours=1)  # older minutes are the sweep's
SWEEP_LAG = timedelta(minutes=2)


class MinuteLedger:
    def __init__(
        self, worker, *, settle: float, sweep_hours: float, unstored_minutes: int
    ) -> None:
        self.worker = worker
        self.settle = timedelta(seconds=settle)
        self.sweep_span = timedelta(hours=sweep_hours)
        self.unstored_minutes = unstored_minutes
        self.overflowed = 0
        self.reconciled_missing = 0
        self.swept = 0

    # --- storing --------------------------------------------------------------------
    async def store(self, *, final: bool = False) -> None:
        """Store closed minutes (and on shutdown the forming ones) in one batch."""
        w = self.worker
        closed = w.aggregator.due(now=w.now(), final=final)
        w.anomalies.on_closed(closed, before=floor_minute(w.now()))
        self._overflow_to_gaps()
        if not closed:
            return
        rows: dict[str, list[tuple]] = {}
        partial: dict[str, str] = {}
        now_minute = floor_minute(w.now())
        for item in closed:
            state = w.states.get(item.symbol)
            row = w.instrument_rows.get(item.symbol)
            if row is None:
                continue
            bar = item.bar
            # A symbol removed meanwhile keeps the provider it streamed from.
            provider = state.provider if state is not None else row["provider"]
            rows.setdefault(provider, []).append(
                (
                    row["id"],
                    "1m",
                    bar.ts,
                    bar.open,
                    bar.high,
                    bar.low,
                    bar.close,
                    bar.volume,
                    bar.computed_vwap(),
                    bar.trade_count or None,
                )
            )
            if final and bar.ts >= now_minute and not bar.from_provider:
                partial[item.symbol] = bar.ts.isoformat()
        try:
            w.bars_stored += await w._in_db(
                services.live_bars_store, rows=rows, partial=partial
            )
        except Exception as exc:  # kept in memory, retried
            w.bar_store_failures += 1
            for item in closed:
                item.bar.dirty = True
            w.db_outage.failed(
                exc,
                doing="storing live bars",
                impact=f"closed minutes are kept in memory (at most "
                f"{self.unstored_minutes} per instrument, then the gap ledger)",
            )
            return
        w.db_outage.succeeded()

    def _overflow_to_gaps(self) -> None:
        w = self.worker
        dropped = w.aggregator.take_overflow()
        for symbol, minute in dropped:
            w.gaps.add(w.instrument_rows.get(symbol), minute, minute + MINUTE)
        if dropped:
            self.overflowed += len(dropped)
            logger.warning(
                "%d unstored minutes past the limit of %d per instrument: "
                "moved to the gap ledger for backfill",
                len(dropped),
                self.unstored_minutes,
            )

    # --- the gap ledger -------------------------------------------------------------
    async def report_gaps(self, *, settle: float) -> None:
        """Write missed minutes that are over (plus `settle`) to the ledger;
        failed writes stay queued for the next call."""
        w = self.worker
        due = w.gaps.take_due(w.now() - timedelta(seconds=settle))
        if not due:
            return
        try:
            failed = await w._in_db(services.gaps_report, gaps=due)
        except Exception as exc:  # retried on the next call
            failed = due
            w.db_outage.failed(
                exc,
                doing="writing the gap ledger",
                impact="gaps are kept and written when it answers",
            )
        else:
            if failed:
                w.db_outage.failed(
                    RuntimeError(f"{len(failed)} gap write(s) refused"),
                    doing="writing the gap ledger",
                    impact="gaps are kept and written when it answers",
                )
            else:
                w.db_outage.succeeded()
        w.gaps.retry(failed)
        w.gaps_reported += len(due) - len(failed)

    # --- reconciliation -------------------------------------------------------------
    def reconcile(self) -> int:
        """Queue every closed minute of an open market that is neither stored,
        waiting for storage, nor known to the ledger. Returns how many."""
        w = self.worker
        horizon = floor_minute(w.now() - self.settle)  # minutes before it are due
        open_at: dict[tuple[str, datetime], bool] = {}
        missing = 0
        for state in w.states.values():
            since = state.reconciled_until
            if since is None or since >= horizon:
                continue
            since = max(since, horizon - RECONCILE_MAX)
            row = w.instrument_rows.get(state.symbol)
            minute = since
            while minute < horizon:
                key = (state.asset_class, minute)
                is_open = open_at.get(key)
                if is_open is None:
                    is_open = open_at[key] = calendar.is_open(state.asset_class, minute)
                if (
                    is_open
                    and not w.aggregator.accounted(state.symbol, minute)
                    and not w.gaps.covers(state.symbol, minute)
                ):
                    w.gaps.add(row, minute, minute + MINUTE)
                    missing += 1
                minute += MINUTE
            state.reconciled_until = horizon
        w.gaps.forget_before(horizon)
        if missing:
            self.reconciled_missing += missing
            w.problems.warning(
                "reconcile",
                "%d closed minute(s) had no bar and no gap: queued for backfill",
                missing,
            )
        return missing

    # --- the sweep ------------------------------------------------------------------
    async def sweep(self) -> int:
        """Report holes in the stored minutes of the last hours of every
        streamed instrument. Skipped while minutes wait for storage (they
        would look like holes)."""
        w = self.worker
        if not w.states or w.aggregator.unstored():
            return 0
        # The last minutes may still be on their way to storage.
        end = floor_minute(w.now() - self.settle) - SWEEP_LAG
        instruments = [
            (s.instrument_id, s.asset_class, serves_extended_hours(s.provider))
            for s in w.states.values()
            if s.symbol in w.routes  # over budget: not streamed, no holes
        ]
        from marketdata.sweep import gaps_sweep

        reported = await w._in_db(
            gaps_sweep, instruments=instruments, start=end - self.sweep_span, end=end
        )
        self.swept += reported
        if reported:
            logger.info(
                "sweep: %d hole(s) in stored minutes sent for backfill", reported
            )
        return reported
