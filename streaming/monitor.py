"""The stream worker's feed monitor: health scores, a stats line per
connection, connection events in the log, and ops alerts.

`FeedMonitor.step()` runs every second (`StreamWorker.step_monitor`):

- observes every connection for its health score
  (`streaming.health_score.HealthTracker`; `FeedMonitor.score(connection)` is
  what failover and the status page use);
- logs one stats line per connection every `STREAM_MONITOR_STATS_EVERY`
  seconds (60): messages/s by kind, bars/min, errors, reconnects, uptime, lag,
  health score and database health;
- keeps the last hour of message rate, lag p99 and score per connection (one
  point per 30 s) for the status page's charts;
- raises an ops alert once when a threshold is crossed and clears it when the
  condition ends (settings `STREAM_MONITOR_*`):
  no quotes for 60 s / no bars for 5 min while a market the connection serves
  is open and it has instruments (providers that stream neither, Finnhub, are
  exempt), more than 10 reconnects in an hour, not live for more than 5 min,
  PostgreSQL unreachable for more than 10 s.

`on_lifecycle(connection, event)` (from `StreamWorker._on_control`) logs each
disconnect with its cause and each reconnect with how long it was down, at
most one line per connection and direction per 10 s (the rest counted in the
next line). Ops alerts are recorded through the worker's database thread
(`alerts.ops_services.ops_alerts_record`); while PostgreSQL is away they wait
in memory (bounded) and are recorded when it answers.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from core.logs import RateLimitedLog
from core.outage import duration_text
from streaming.health_score import (
    HealthLimits,
    HealthScore,
    HealthTracker,
    calendar_open,
)
from streaming.stats import KINDS

logger = logging.getLogger(__name__)

# What each provider streams; others stream trades, quotes and bars.
STREAM_KINDS = {"finnhub": frozenset({"trade"})}
ALL_KINDS = frozenset({"trade", "quote", "bar"})
HISTORY_EVERY = 30.0
HISTORY_POINTS = 120  # an hour
EVENT_LOG_EVERY = 10.0
OUTBOX_LIMIT = 1000


@dataclass(frozen=True)
class Thresholds:
    no_quotes_after: float = 60.0
    no_bars_after: float = 300.0
    reconnects_per_hour: int = 10
    down_after: float = 300.0
    db_after: float = 10.0
    stats_every: float = 60.0

    @classmethod
    def from_settings(cls) -> Thresholds:
        from django.conf import settings

        return cls(
            no_quotes_after=settings.STREAM_MONITOR_NO_QUOTES_AFTER,
            no_bars_after=settings.STREAM_MONITOR_NO_BARS_AFTER,
            reconnects_per_hour=settings.STREAM_MONITOR_RECONNECTS_PER_HOUR,
            down_after=settings.STREAM_MONITOR_DOWN_AFTER,
            db_after=settings.STREAM_MONITOR_DB_AFTER,
            stats_every=settings.STREAM_MONITOR_STATS_EVERY,
        )


class _Watch:
    """Per connection: when quotes and bars last arrived, since when data is
    expected, since when it is down, and the counts at the last stats line."""

    def __init__(self, connection, now: float) -> None:
        stats = connection.stats
        self.quotes, self.bars = stats.by_kind["quote"], stats.by_kind["bar"]
        self.quote_at = self.bar_at = now
        self.expected_since: float | None = None
        self.down_since: float | None = None
        self.line_at = now
        self.line_counts = dict(stats.by_kind)
        self.line_problems = stats.errors + stats.malformed
        self.history: deque[list] = deque(maxlen=HISTORY_POINTS)
        self.history_at = now - HISTORY_EVERY
        self.history_count = sum(stats.by_kind.values())


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class FeedMonitor:
    def __init__(
        self,
        worker,
        *,
        clock: Callable[[], float] = time.time,
        market_open: Callable[[str, float], bool] = calendar_open,
        thresholds: Thresholds | None = None,
        limits: HealthLimits | None = None,
    ) -> None:
        self.worker = worker
        self.clock = clock
        self.market_open = market_open
        self.thresholds = thresholds or Thresholds.from_settings()
        self.health = HealthTracker(
            limits=limits or HealthLimits.from_settings(), market_open=market_open
        )
        self.watches: dict[str, _Watch] = {}
        self.active: dict[tuple[str, str], dict] = {}  # (kind, connection) -> alert
        self.outbox: list[dict] = []
        self.dropped = 0
        self.recorded = 0
        self._orphans_cleared = False
        self.lines = RateLimitedLog(logger, every=EVENT_LOG_EVERY)

    # --- the API for failover and the status page ------------------------------------
    def score(self, connection, now: float | None = None) -> HealthScore:
        """The connection's health score now (0-100, healthy, reasons)."""
        return self.health.score(connection, self.clock() if now is None else now)

    def connection_report(self, connection) -> dict:
        """Health score and the last hour's points, for the health document."""
        now = self.clock()
        watch = self.watches.get(connection.key)
        return {
            "health": self.score(connection, now).as_dict(),
            "history": [] if watch is None else list(watch.history),
        }

    def report(self) -> dict:
        return {
            "ops_alerts": [self._public(a) for a in self.active.values()],
            "database": "unreachable" if self.worker.db_outage.down else "ok",
            "ops_alerts_waiting": len(self.outbox),
            "ops_alerts_dropped": self.dropped,
        }

    # --- the step -------------------------------------------------------------------
    async def step(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        holding: dict[tuple[str, str], tuple[str, object]] = {}
        for connection in list(self.worker.connections.values()):
            self.health.observe(connection, now)
            watch = self.watches.get(connection.key)
            if watch is None:
                watch = self.watches[connection.key] = _Watch(connection, now)
            holding.update(self._conditions(connection, watch, now))
            self._sample(connection, watch, now)
            if now - watch.line_at >= self.thresholds.stats_every:
                self._stats_line(connection, watch, now)
        outage = self.worker.db_outage
        if (
            outage.down
            and outage.clock() - outage.started_at >= self.thresholds.db_after
        ):
            down_for = outage.clock() - outage.started_at
            holding[("database", "")] = (
                f"PostgreSQL unreachable for {duration_text(down_for)} "
                f"({outage.last_error})",
                None,
            )
        self._apply(holding, now)
        await self.record()

    def _conditions(self, connection, watch: _Watch, now: float) -> dict:
        t, stats, key = self.thresholds, connection.stats, connection.key
        found: dict[tuple[str, str], tuple[str, object]] = {}
        if stats.by_kind["quote"] != watch.quotes:
            watch.quotes, watch.quote_at = stats.by_kind["quote"], now
        if stats.by_kind["bar"] != watch.bars:
            watch.bars, watch.bar_at = stats.by_kind["bar"], now
        expected = self.health.is_expected(connection, now)
        if not expected:
            watch.expected_since = None
        elif watch.expected_since is None:
            watch.expected_since = now
        kinds = STREAM_KINDS.get(connection.provider_name, ALL_KINDS)
        for kind, last, limit in (
            ("quote", watch.quote_at, t.no_quotes_after),
            ("bar", watch.bar_at, t.no_bars_after),
        ):
            if not expected or kind not in kinds:
                continue
            quiet = now - max(last, watch.expected_since)
            if quiet >= limit:
                found[(f"no_{kind}s", key)] = (
                    f"{key}: no {kind}s for {duration_text(quiet)} while the market "
                    f"is open ({len(connection.desired)} instruments wanted, "
                    f"state {connection.state})",
                    connection,
                )
        reconnects = self.health.reconnects_last_hour(key)
        if reconnects > t.reconnects_per_hour:
            found[("reconnects", key)] = (
                f"{key}: {reconnects} reconnects in the last hour "
                f"(more than {t.reconnects_per_hour})",
                connection,
            )
        if connection.state in ("live", "idle"):  # idle: never started
            watch.down_since = None
        elif watch.down_since is None:
            watch.down_since = now
        elif now - watch.down_since >= t.down_after and connection.state != "stopped":
            found[("disconnected", key)] = (
                f"{key}: not connected for {duration_text(now - watch.down_since)} "
                f"(state {connection.state}; {connection.last_error or 'no error'})",
                connection,
            )
        return found

    def _apply(self, holding: dict, now: float) -> None:
        for ident, (message, connection) in holding.items():
            if ident in self.active:
                continue  # raised once while the condition holds
            alert = {
                "key": uuid4().hex,
                "kind": ident[0],
                "connection": ident[1],
                "provider": getattr(connection, "provider_name", ""),
                "worker": self.worker.id,
                "message": message[:300],
                "raised_at": datetime.fromtimestamp(now, UTC),
                "cleared_at": None,
            }
            self.active[ident] = alert
            self._queue(alert)
            logger.warning("ops alert: %s", message)
        for ident in [i for i in self.active if i not in holding]:
            alert = self.active.pop(ident)
            alert["cleared_at"] = datetime.fromtimestamp(now, UTC)
            self._queue(alert)
            lasted = (alert["cleared_at"] - alert["raised_at"]).total_seconds()
            logger.info(
                "ops alert cleared after %s: %s",
                duration_text(lasted),
                alert["message"],
            )

    def _queue(self, alert: dict) -> None:
        if len(self.outbox) >= OUTBOX_LIMIT:
            self.outbox.pop(0)
            self.dropped += 1
        self.outbox.append(dict(alert))

    async def record(self) -> None:
        """Store waiting raise/clear records (kept while PostgreSQL is away)."""
        from alerts.ops_services import ops_alerts_clear_orphans, ops_alerts_record

        outage = self.worker.db_outage
        if not (self.outbox or not self._orphans_cleared) or not outage.should_try():
            return
        batch = list(self.outbox)
        try:
            if not self._orphans_cleared:
                await self.worker._in_db(
                    ops_alerts_clear_orphans, worker=self.worker.id
                )
                self._orphans_cleared = True
            if batch:
                await self.worker._in_db(ops_alerts_record, changes=batch)
        except Exception as exc:  # kept, retried next step
            outage.failed(
                exc,
                doing="recording ops alerts",
                impact="ops alerts are kept and recorded when it answers",
            )
            return
        outage.succeeded()
        del self.outbox[: len(batch)]
        self.recorded += len(batch)

    # --- log lines and charts -------------------------------------------------------
    def on_lifecycle(self, connection, event) -> None:
        """One line per disconnect (with its cause) and reconnect, at most one
        of each per connection every EVENT_LOG_EVERY seconds."""
        key, watch = connection.key, self.watches.get(connection.key)
        if event.state == "down":
            self.lines.warning(
                f"down:{key}",
                "%s: disconnected: %s",
                key,
                event.reason or "no reason given",
            )
        else:
            down = (
                f" (down {duration_text(event.at - watch.down_since)})"
                if watch is not None and watch.down_since is not None
                else ""
            )
            self.lines.log(logging.INFO, f"up:{key}", "%s: connected%s", key, down)

    def _sample(self, connection, watch: _Watch, now: float) -> None:
        if now - watch.history_at < HISTORY_EVERY:
            return
        count = sum(connection.stats.by_kind.values())
        elapsed = now - watch.history_at
        rate = (count - watch.history_count) / elapsed if elapsed > 0 else 0.0
        if len(watch.history) == 0:
            rate = self.health.rate(connection.key, now) or 0.0
        inputs = self.health.inputs(connection, now)
        score = self.score(connection, now)
        watch.history.append(
            [
                round(now),
                round(rate, 2),
                None if inputs.lag_p99_ms is None else round(inputs.lag_p99_ms, 1),
                score.value,
            ]
        )
        watch.history_at, watch.history_count = now, count

    def _stats_line(self, connection, watch: _Watch, now: float) -> None:
        stats, elapsed = connection.stats, max(1e-6, now - watch.line_at)
        rates = " ".join(
            f"{(stats.by_kind[k] - watch.line_counts.get(k, 0)) / elapsed:.1f} {k}/s"
            for k in KINDS
        )
        bars_per_min = 60 * (stats.by_kind["bar"] - watch.line_counts["bar"]) / elapsed
        problems = stats.errors + stats.malformed
        inputs = self.health.inputs(connection, now)
        score = self.score(connection, now)
        lag = "-" if inputs.lag_p99_ms is None else f"{inputs.lag_p99_ms:.0f} ms"
        logger.info(
            "stats %s: %s, %s, %.1f bars/min, %d errors (+%d), reconnects %d in "
            "the last hour (%d in all), live %.0f%% of %s, lag p99 %s, health %d%s, "
            "database %s",
            connection.key,
            connection.state,
            rates,
            bars_per_min,
            problems,
            problems - watch.line_problems,
            self.health.reconnects_last_hour(connection.key),
            stats.reconnects,
            100 * inputs.uptime,
            f"{self.health.limits.window / 60:.0f} min",
            lag,
            score.value,
            "" if score.healthy else " (unhealthy: " + "; ".join(score.reasons) + ")",
            "unreachable" if self.worker.db_outage.down else "ok",
        )
        watch.line_at, watch.line_counts = now, dict(stats.by_kind)
        watch.line_problems = problems

    @staticmethod
    def _public(alert: dict) -> dict:
        return {
            **alert,
            "raised_at": alert["raised_at"].isoformat(),
            "cleared_at": alert["cleared_at"] and alert["cleared_at"].isoformat(),
        }
