"""The stream worker's side of alerts: building the engine, the symbols its
rules need streamed, feeding it events and freshness, and recording what
fires (`AlertOutbox`, kept while the database is away). Evaluation itself is
`alerts.engine.AlertEngine`."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from uuid import uuid4

logger = logging.getLogger(__name__)


def alert_engine_build(shard=None):
    """The alert engine with every active rule loaded (database access).
    Events reach it only for the worker's own instruments, so each
    single-instrument rule is evaluated by one shard; multi-condition and
    portfolio rules fire only on the shard owning their home symbol (see
    `alerts.engine`), which reads other shards' prices from the snapshots."""
    from alerts.engine import AlertEngine

    owns = shard.owns if shard is not None and shard.count > 1 else None
    engine = AlertEngine(symbols=None, owns=owns)
    engine.reload()
    return engine


def alert_symbols(engine) -> set[str]:
    """Symbols alert rules read: the worker streams them too."""
    if engine is None:
        return set()
    return engine.watched_symbols()


class AlertOutbox:
    """Fired alerts waiting to be recorded. A failed write (the database is
    away) keeps them for the next try; each carries a key, so a write that
    committed but could not say so is not recorded twice. Bounded: past
    `limit` the newest are refused (the oldest are the ones a user would miss)
    and counted in `dropped`, with one log line per outage."""

    def __init__(self, *, outage, limit: int | None = None) -> None:
        from django.conf import settings

        self.limit = limit if limit is not None else settings.STREAM_ALERTS_KEPT
        self.queue: list = []
        self.dropped = 0  # in all
        self._dropped_now = 0  # in the current outage
        self.recorded = 0
        self.outage = outage  # the worker's database outage

    def add(self, fired) -> None:
        if not fired:
            return
        now = datetime.now(UTC)
        room = self.limit - len(self.queue)
        keep = list(fired)[: max(0, room)]
        self.queue.extend(replace(f, key=uuid4().hex, fired_at=now) for f in keep)
        refused = len(fired) - len(keep)
        if refused:
            if not self._dropped_now:
                logger.error(
                    "%d fired alert(s) waiting to be recorded: newer ones are "
                    "dropped until the database answers",
                    len(self.queue),
                )
            self.dropped += refused
            self._dropped_now += refused

    async def record(self, run_in_db) -> None:
        if not self.queue:
            return
        from alerts.services import alert_events_record

        batch = list(self.queue)
        try:
            await run_in_db(alert_events_record, fired=batch)
        except Exception as exc:  # kept, retried next call
            self.outage.failed(
                exc,
                doing="recording fired alerts",
                impact="fired alerts are kept and recorded when it answers",
            )
            return
        self.outage.succeeded()
        del self.queue[: len(batch)]
        self.recorded += len(batch)
        if self._dropped_now:
            logger.error(
                "%d fired alert(s) were dropped during the outage", self._dropped_now
            )
            self._dropped_now = 0


class AlertBridge:
    """The worker's part between its events and the alert engine. Rule changes
    are read on the database thread and applied on the loop, so evaluation
    never races an index update."""

    def __init__(self, worker, *, engine=None) -> None:
        self.worker = worker
        self.engine = engine
        self.outbox = AlertOutbox(outage=worker.db_outage)
        self._build_pending = False

    def symbols(self) -> set[str]:
        return alert_symbols(self.engine)

    def on_event(self, event) -> None:
        try:
            fired = self.engine.on_event(event, None)
        except Exception as exc:  # one bad rule must not stop the feed
            self.worker.problems.warning(
                "alerts", "alert evaluation failed for %s", event.symbol, exc=exc
            )
            return
        if fired:
            self.outbox.add(fired)

    def on_anomaly(self, anomaly) -> None:
        """A market anomaly (`marketdata.anomalies.Anomaly`) for the engine."""
        if self.engine is None:
            return
        try:
            fired = self.engine.on_anomaly(anomaly)
        except Exception as exc:  # one bad rule must not stop the rest
            self.worker.problems.warning(
                "alerts-anomaly",
                "alert evaluation failed for an anomaly of %s",
                anomaly.symbol,
                exc=exc,
            )
            return
        if fired:
            self.outbox.add(fired)

    def on_freshness(self, symbol: str, freshness: str) -> None:
        if self.engine is None:
            return
        try:
            self.engine.set_freshness(symbol, freshness)
        except Exception as exc:
            self.worker.problems.warning(
                "alerts-freshness", "alert freshness update failed", exc=exc
            )

    async def build(self) -> None:
        try:
            shard = getattr(self.worker.options, "shard", None)
            self.engine = await self.worker._in_db(alert_engine_build, shard)
            self._build_pending = False
        except Exception as exc:  # the database may come up later
            self.worker.problems.error(
                "alerts-build", "loading alert rules failed; retrying", exc=exc
            )
            self._build_pending = True
        else:
            self.worker.problems.recovered("alerts-build", "alert rules loaded")

    async def step(self) -> None:
        w, engine = self.worker, self.engine
        if engine is None:
            if self._build_pending:
                await self.build()
        else:
            try:
                for state in w.states.values():
                    if state.prev_close is not None:
                        engine.set_prev_close(state.symbol, state.prev_close)
                self.outbox.add(engine.on_clock(datetime.now(UTC)))
            except Exception as exc:  # one bad rule must not stop the rest
                w.problems.warning("alerts-clock", "alert clock step failed", exc=exc)
            else:
                w.problems.recovered("alerts-clock", "alert clock step works again")
            await self._foreign_step(engine)
            try:
                changes = await w._in_db(engine.fetch_changes)
            except Exception as exc:  # the database is away
                w.db_outage.failed(exc, doing="reading alert rule changes")
            else:
                if changes is not None:
                    engine.apply_changes(changes)
        await self.outbox.record(w._in_db)

    async def _foreign_step(self, engine) -> None:
        """Prices of other shards' instruments that this shard's multi and
        portfolio rules read, from the snapshot store."""
        symbols = engine.foreign_symbols()
        if not symbols:
            return
        from streaming.snapshots import snapshots_get_safe

        snapshots = await self.worker._in_db(snapshots_get_safe, symbols=symbols)
        if snapshots:
            try:
                self.outbox.add(engine.apply_foreign(snapshots))
            except Exception as exc:  # one bad rule must not stop the rest
                self.worker.problems.warning(
                    "alerts-foreign", "applying other shards' prices failed", exc=exc
                )
