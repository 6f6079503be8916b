"""The stream worker's market-anomaly part (`marketdata.anomalies` on live
minutes).

Each instrument gets an `AnomalyDetector` started from its stored minutes of
the last `min_days + 1` days (loaded on the database thread, a few
instruments per step; minutes closing meanwhile wait and are tested after).
The ledger's store step hands over every minute it stores as the minute
closes (`on_closed`: the same minutes that are stored, never the forming
one), so detection is once a minute per instrument, off the per-event path.

An anomaly found is handed to the alert bridge at once (`on_anomaly`) and
queued; `step` (every second, with the bar store) writes the queue in one
batch (`marketdata.services.anomalies_record`, unique per instrument, kind
and minute) and then publishes each to the instrument's channel-layer group
as ``{"type": "market.anomaly", "anomaly": <Anomaly.as_document()>}``. A
failed write keeps the queue (at most `kept`; past it the newest are
refused, counted in `dropped`, one log line per outage); a failed publish
loses only the live toast, the record is stored.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from core.groups import symbol_group
from core.redis import REDIS_ERRORS
from marketdata.anomalies import Anomaly, AnomalyConfig, AnomalyDetector
from marketdata.calendar import ALWAYS_OPEN_CLASSES, NEW_YORK

logger = logging.getLogger(__name__)

MARKET_ANOMALY = "market.anomaly"
WARM_PER_STEP = 5  # instruments whose history loads in one step
WAITING_LIMIT = 1440  # closed minutes kept per instrument while it warms up


def anomaly_config() -> AnomalyConfig:
    from django.conf import settings

    window = settings.ANOMALY_WINDOW
    return AnomalyConfig(
        window=window,
        min_history=min(30, window),
        days=settings.ANOMALY_DAYS,
        min_days=min(5, settings.ANOMALY_DAYS),
        return_z=settings.ANOMALY_RETURN_Z,
        surge=settings.ANOMALY_SURGE,
    )


def detectors_warm(
    *,
    instruments: list[tuple[str, int, str, datetime]],
    config: AnomalyConfig,
    now: datetime,
) -> dict[str, AnomalyDetector]:
    """Detectors started from stored minutes (database thread): one per
    (symbol, instrument id, asset class, first minute still to test); only
    minutes before that one are history."""
    from marketdata.selectors import minute_bars_since

    since = now - timedelta(days=config.min_days + 1)
    ids = [i for _, i, _, _ in instruments]
    bars = minute_bars_since(instrument_ids=ids, since=since)
    out = {}
    for symbol, instrument_id, asset_class, before in instruments:
        zone = UTC if asset_class in ALWAYS_OPEN_CLASSES else NEW_YORK
        detector = AnomalyDetector(symbol, config, tz=zone)
        for bar in bars.get(instrument_id, ()):
            if bar.ts >= before:
                break
            detector.on_minute(bar)
        out[symbol] = detector
    return out


class AnomalyWatch:
    def __init__(self, worker, *, config: AnomalyConfig | None, kept: int) -> None:
        self.worker = worker
        self.config = config  # None: anomaly detection is off
        self.kept = kept
        self.detectors: dict[str, AnomalyDetector] = {}
        self.waiting: dict[str, list] = {}  # closed minutes while warming up
        self.queue: list[tuple[int, Anomaly]] = []
        self.detected = self.recorded = self.published = self.dropped = 0
        self._dropped_now = 0

    # --- on the loop ----------------------------------------------------------------
    def on_closed(self, closed: list, *, before: datetime) -> None:
        """Test the minutes the ledger stores (those that ended before
        `before`; corrections of minutes already tested are ignored)."""
        if self.config is None:
            return
        for item in closed:
            bar = item.bar
            if bar.ts >= before:
                continue  # the forming minute, stored at shutdown
            detector = self.detectors.get(item.symbol)
            if detector is None:
                waiting = self.waiting.setdefault(item.symbol, [])
                waiting.append(bar)
                del waiting[:-WAITING_LIMIT]
                continue
            self._test(detector, bar)

    def _test(self, detector: AnomalyDetector, bar) -> None:
        found = detector.on_minute(bar)
        if not found:
            return
        row = self.worker.instrument_rows.get(detector.symbol)
        if row is None:
            return
        bridge = self.worker.alert_bridge
        for anomaly in found:
            self.detected += 1
            bridge.on_anomaly(anomaly)
            if len(self.queue) >= self.kept:
                self.dropped += 1
                if not self._dropped_now:
                    logger.error(
                        "%d anomalies waiting to be recorded: newer ones are "
                        "dropped until the database answers",
                        len(self.queue),
                    )
                self._dropped_now += 1
                continue
            self.queue.append((row["id"], anomaly))

    # --- every second ---------------------------------------------------------------
    async def step(self) -> None:
        if self.config is None:
            return
        await self._warm()
        await self._record()

    async def _warm(self) -> None:
        w = self.worker
        symbols = [s for s in self.waiting if s not in self.detectors]
        batch = []
        for symbol in symbols[:WARM_PER_STEP]:
            row = w.instrument_rows.get(symbol)
            if row is None or not self.waiting[symbol]:
                self.waiting.pop(symbol, None)  # no longer streamed here
                continue
            first = min(bar.ts for bar in self.waiting[symbol])
            batch.append((symbol, row["id"], row["asset_class"], first))
        if not batch:
            return
        try:
            warmed = await w._in_db(
                detectors_warm,
                instruments=batch,
                config=self.config,
                now=datetime.now(UTC),
            )
        except Exception as exc:  # retried on the next step
            w.db_outage.failed(
                exc,
                doing="loading minutes for anomaly detection",
                impact="closed minutes wait and are tested when it answers",
            )
            return
        for symbol, detector in warmed.items():
            self.detectors[symbol] = detector
            for bar in self.waiting.pop(symbol, ()):
                self._test(detector, bar)

    async def _record(self) -> None:
        if not self.queue:
            return
        from marketdata.services import anomalies_record

        w = self.worker
        batch = list(self.queue)
        try:
            await w._in_db(anomalies_record, anomalies=batch)
        except Exception as exc:  # kept, retried next step
            w.db_outage.failed(
                exc,
                doing="recording anomalies",
                impact="anomalies are kept and recorded when it answers",
            )
            return
        w.db_outage.succeeded()
        del self.queue[: len(batch)]
        self.recorded += len(batch)
        if self._dropped_now:
            logger.error(
                "%d anomalies were dropped during the outage", self._dropped_now
            )
            self._dropped_now = 0
        await self._publish([a for _, a in batch])

    async def _publish(self, anomalies: list[Anomaly]) -> None:
        publisher = self.worker.publisher
        if publisher is None:
            return
        for anomaly in anomalies:
            try:
                await publisher.layer.group_send(
                    symbol_group(anomaly.symbol),
                    {"type": MARKET_ANOMALY, "anomaly": anomaly.as_document()},
                )
            except REDIS_ERRORS as exc:
                publisher.redis.failed(
                    exc,
                    doing="publishing anomalies",
                    impact="anomalies are recorded; their live notice is skipped",
                )
                return
            self.published += 1

    def document(self) -> dict:
        return {
            "detected": self.detected,
            "recorded": self.recorded,
            "waiting": len(self.queue),
            "dropped": self.dropped,
            "instruments": len(self.detectors),
        }

    def forget(self, symbol: str) -> None:
        self.detectors.pop(symbol, None)
        self.waiting.pop(symbol, None)
