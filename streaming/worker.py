"""The stream worker behind `manage.py start_streams`: a small scheduler of
step methods over parts with one job each.

One asyncio event loop owns all state. Provider connections
(`streaming.connection.FeedConnection`: a thread each connects, the loop
reads the live sessions' frames) append parsed batches to `inbox`, which the
loop drains (`step_ingest`, the hot path, kept here): it updates each
instrument's state and minute bars, and publishes coalesced updates
(`step_publish`, see `streaming.publisher`; in the running worker a publish
goes beside the loop, which keeps ingesting, and its end or one timer starts
the next). The periodic steps delegate to the parts:

- `streaming.subscriptions.Subscriptions`: instruments in use reach the
  provider within 2 s without a reconnect (`step_subscriptions`);
- `streaming.watchdog.Watchdog`: freshness and stuck or silent connections
  (`step_freshness`, `step_watchdog`);
- `streaming.ledger.MinuteLedger`: nothing lost - bar storage, gap reports,
  per-minute reconciliation, the sweep (`step_store_bars`, `step_gaps`,
  `step_reconcile`, `step_sweep`);
- `streaming.alerting.AlertBridge`: the alert engine and fired alerts kept
  until recorded (`step_alerts`);
- `streaming.suspect.SuspectFilter` (one per instrument, in `process`):
  trades far outside the recent range held until confirmed;
- `streaming.anomaly_watch.AnomalyWatch`: market anomalies of each minute
  as it is stored, recorded and published (`step_store_bars`);
- `streaming.publisher.Publisher`: health reports (`step_health`);
- `streaming.monitor.FeedMonitor`: connection health scores, stats lines,
  connection events and ops alerts (`step_monitor`).

Every step returns whether the worker should keep running; tests call them
directly. Database work runs on one dedicated thread, never on the loop. Over
400 lines because the ingest path (`process`) is one function on purpose: it
runs per event; the rest is one short step method per part, kept on the
worker so tests and the scheduler call the same methods.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import close_old_connections

from core.logs import RateLimitedLog
from core.minutes import MINUTE, floor_minute
from core.outage import Outage
from core.redis import redis_outage
from marketdata.anomalies import AnomalyConfig
from marketdata.events import ControlType
from streaming.aggregator import MinuteAggregator
from streaming.alerting import AlertBridge, AlertOutbox
from streaming.anomaly_watch import AnomalyWatch, anomaly_config
from streaming.coldstart import ColdStart
from streaming.connection import FeedConnection
from streaming.crosscheck import CrossCheck
from streaming.gaps import GapTracker, PendingGap
from streaming.health import WorkerRates, worker_health
from streaming.ledger import MinuteLedger
from streaming.monitor import FeedMonitor
from streaming.printer import event_json, event_printer
from streaming.publisher import Publisher
from streaming.quote_runs import apply_quote_run
from streaming.shard import Shard
from streaming.state import InstrumentState
from streaming.subscriptions import Subscriptions
from streaming.suspect import SuspectConfig, SuspectFilter
from streaming.watchdog import Watchdog

logger = logging.getLogger(__name__)


@dataclass
class WorkerOptions:
    provider: str | None = None  # equities (and crypto when it can)
    crypto_provider: str | None = None
    shard: Shard = field(default_factory=Shard)
    record: str | None = None
    print_events: bool = False
    msgpack: bool = True  # binary frames where the provider offers them
    publish_hz: float | None = None  # default settings.STREAM_PUBLISH_HZ
    stale_after: float | None = (
        None  # instrument freshness, settings.STREAM_STALE_AFTER
    )
    feed_stale_after: float | None = None  # silent connection -> reconnect
    auth_timeout: float = 15.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    backoff_reset: float = 30.0
    connection_limit_backoff: float = 95.0
    bar_grace: float = 2.0
    gap_settle: float = 5.0
    # Nothing lost (`streaming.ledger`); None = the STREAM_* setting.
    unstored_minutes: int | None = None
    reconcile_settle: float | None = None
    sweep_every: float | None = None
    sweep_hours: float | None = None
    restart_backfill_window: float = 6 * 3600.0
    subscriptions_every: float = 1.0
    health_every: float = 2.0
    store_every: float = 1.0
    # Failover (`streaming.failover`): pings find a silent server within
    # ping_every + ping_timeout; None = the STREAM_* setting.
    ping_every: float = 3.0
    ping_timeout: float = 3.0
    failover_after: float | None = None
    failback_hold: float | None = None
    shutdown_timeout: float = 4.0
    # Suspect ticks (streaming.suspect): a config, True/False, or None for the
    # STREAM_SUSPECT_* settings.
    suspect: SuspectConfig | bool | None = None
    # Market anomalies (streaming.anomaly_watch): a config, True/False, or None
    # for the ANOMALY_* settings.
    anomalies: AnomalyConfig | bool | None = None

    def __post_init__(self) -> None:
        if self.suspect is None:
            self.suspect = bool(settings.STREAM_SUSPECT_ENABLED)
        if self.suspect is True:
            self.suspect = suspect_config()
        elif self.suspect is False:
            self.suspect = None
        if self.anomalies is None:
            self.anomalies = bool(settings.ANOMALY_ENABLED)
        if self.anomalies is True:
            self.anomalies = anomaly_config()
        elif self.anomalies is False:
            self.anomalies = None
        if self.publish_hz is None:
            self.publish_hz = float(settings.STREAM_PUBLISH_HZ)
        if self.stale_after is None:
            self.stale_after = float(settings.STREAM_STALE_AFTER)
        for name in (
            "unstored_minutes",
            "reconcile_settle",
            "sweep_every",
            "sweep_hours",
        ):
            if getattr(self, name) is None:
                setattr(self, name, getattr(settings, f"STREAM_{name.upper()}"))
        if self.failover_after is None:
            self.failover_after = float(settings.STREAM_FAILOVER_AFTER)
        if self.failback_hold is None:
            self.failback_hold = float(settings.STREAM_FAILBACK_HOLD)
        if self.feed_stale_after is None:
            # A whole connection silent this long while a market it serves is
            # open is broken (Alpaca's mute-but-open socket); twice the
            # per-instrument threshold, so a few quiet symbols do not churn it.
            self.feed_stale_after = 2 * self.stale_after


def suspect_config() -> SuspectConfig:
    """The suspect-tick test as configured (STREAM_SUSPECT_* settings)."""
    window = settings.STREAM_SUSPECT_WINDOW
    return SuspectConfig(
        window=window,
        min_trades=min(20, window),
        threshold=settings.STREAM_SUSPECT_THRESHOLD,
        floor_rel=settings.STREAM_SUSPECT_FLOOR_BP / 10_000,
        floor_ticks=settings.STREAM_SUSPECT_FLOOR_TICKS,
        confirm_trades=settings.STREAM_SUSPECT_CONFIRM,
        max_hold=settings.STREAM_SUSPECT_MAX_HOLD,
    )


class StreamWorker:
    def __init__(
        self,
        *,
        options: WorkerOptions | None = None,
        stdout=None,
        layer=None,
        alert_engine=None,
    ) -> None:
        self.options = options or WorkerOptions()
        self.stdout = stdout
        self._layer = layer
        self.id = f"{socket.gethostname()}:{os.getpid()}:{self.options.shard}"
        self.started_at = time.time()
        self.inbox: deque = deque()
        self._signaled = False  # a `_drain` is scheduled
        self._serving = False
        self._publishing: asyncio.Task | None = None
        self._publish_timer: asyncio.TimerHandle | None = None
        self._ingest_error: Exception | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._draining = False  # `_drain` is running (a sink on the loop waits)
        self.stopping: asyncio.Event | None = None
        self.shutdown = False
        self.ready = False
        self.exit_code = 0

        self.states: dict[str, InstrumentState] = {}
        self.routes: dict[str, FeedConnection] = {}  # symbol -> its connection
        self.connections: dict[str, FeedConnection] = {}
        self.instrument_rows: dict[str, dict] = {}
        self.event_clock: datetime | None = None
        o = self.options
        self.aggregator = MinuteAggregator(
            grace=o.bar_grace, unstored_limit=o.unstored_minutes
        )
        self.publisher: Publisher | None = None
        self.gaps = GapTracker(
            aggregator=self.aggregator,
            restart_window=timedelta(seconds=o.restart_backfill_window),
        )
        self.ledger = MinuteLedger(
            self,
            settle=o.reconcile_settle,
            sweep_hours=o.sweep_hours,
            unstored_minutes=o.unstored_minutes,
        )
        self.recorder = None
        # One outage tracker for every part that uses the database.
        self.db_outage = Outage("PostgreSQL", logger=logger)
        # The parts (each in its own module, tests call their steps here).
        self.alert_bridge = AlertBridge(self, engine=alert_engine)
        self.anomalies = AnomalyWatch(
            self, config=o.anomalies, kept=settings.ANOMALY_KEPT
        )
        self.subscriptions = Subscriptions(self)
        self.watchdog = Watchdog(self)
        self.coldstart = ColdStart(self)
        self.crosscheck = CrossCheck(self)
        self.monitor = FeedMonitor(self)

        self.events_total = 0
        self.bars_stored = 0
        self.bar_store_failures = 0
        self.gaps_reported = 0
        self.rates = WorkerRates()
        self.problems = RateLimitedLog(logger)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-db")
        self._print = event_printer(stdout) if o.print_events else None

    # --- running -----------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT or until no connection can run; exit code."""
        asyncio.run(self.main())
        return self.exit_code

    async def main(self) -> None:
        await self.start()
        try:
            await self.serve()
        finally:
            await self.stop()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.stopping = asyncio.Event()
        if self._layer is None:
            from channels.layers import get_channel_layer

            self._layer = get_channel_layer()
        self.publisher = Publisher(layer=self._layer, hz=self.options.publish_hz)
        if self.options.record:
            from streaming.recording import FrameRecorder

            # Written on the loop (frames) and by connection threads.
            self.recorder = FrameRecorder(self.options.record)
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self.loop.add_signal_handler(signum, self.request_shutdown)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests): call request_shutdown()
        if self.alert_engine is None:
            await self.alert_bridge.build()
        logger.info(
            "stream worker %s starting (providers: %s)",
            self.id,
            ", ".join(
                f"{ac} {'>'.join(chain)}"
                for ac, chain in self.subscriptions.router.chains.items()
                if chain
            )
            or "none",
        )
        try:
            await self.step_subscriptions()
        except Exception as exc:  # the database may come up later: the step retries
            self._step_failed("step_subscriptions", exc)
        self.ready = True

    def request_shutdown(self) -> None:
        if not self.shutdown:
            logger.info("stream worker %s stopping", self.id)
        self.shutdown = True
        if self.stopping is not None:
            self.stopping.set()

    async def serve(self) -> None:
        o = self.options
        periodic = [
            (o.subscriptions_every, self.step_subscriptions),
            (o.store_every, self.step_store_bars),
            (1.0, self.step_freshness),
            (o.health_every, self.step_health),
            (0.5, self.step_watchdog),
            (1.0, self.step_gaps),
            (0.5, self.step_alerts),
            (5.0, self.step_reconcile),
            (0.5, self.coldstart.step),
            (1.0, self.crosscheck.step),
            (1.0, self.step_monitor),
        ]
        tasks = [asyncio.create_task(self._every(i, s)) for i, s in periodic]
        # The first sweep waits one interval: at start-up the restart backfill
        # already covers the minutes since the last stored bar.
        tasks.append(
            asyncio.create_task(
                self._every(o.sweep_every, self.step_sweep, delay=o.sweep_every)
            )
        )
        try:
            await self._ingest_loop()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _every(self, interval: float, step: Callable, delay: float = 0.0) -> None:
        name = step.__qualname__.removeprefix("StreamWorker.")  # ColdStart.step
        if delay:
            await asyncio.sleep(delay)
        while not self.shutdown:
            started = time.monotonic()
            try:
                keep_going = step()
                if asyncio.iscoroutine(keep_going):
                    keep_going = await keep_going
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the step runs again
                self._step_failed(name, exc)
                keep_going = True
            else:
                self.problems.recovered(
                    f"step:{name}", "stream worker step %s works again", name
                )
            if not keep_going:
                self.request_shutdown()
                return
            self._schedule_publish()  # a state the step marked goes out
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _step_failed(self, name: str, exc: Exception) -> None:
        """A dependency that is away is one outage (one line when it starts,
        a reminder a minute, one when it ends); anything else is a bug: a line
        a minute per step (its traceback at DEBUG), one when it works again."""
        from django.db import DatabaseError
        from redis.exceptions import RedisError

        if isinstance(exc, DatabaseError):
            self.db_outage.failed(exc, doing=f"the {name} step")
        elif isinstance(exc, RedisError):
            redis_outage().failed(exc, doing=f"the {name} step")
        else:
            self.problems.error(
                f"step:{name}", "stream worker step %s failed", name, exc=exc
            )

    async def _ingest_loop(self) -> None:
        """Apply the inbox as it fills and publish whenever an update is due,
        from loop callbacks until shutdown: a session's frame is applied in
        the callback that read it (`sink`), a connection thread's lifecycle
        marker schedules `_drain` (no task step or timer per frame), and the
        earliest held-back update arms one timer. A publish runs beside the
        loop (one at a time, so in order): the feed is applied while a batch
        is on its way to Redis. An error applying events ends the worker,
        raised from here (as from a step of a loop)."""
        self._serving = True
        self._drain()
        await self.stopping.wait()
        self._stop_serving()
        if self._publishing is not None:
            await self._publishing
        if self._ingest_error is not None:
            raise self._ingest_error

    def _stop_serving(self) -> None:
        self._serving = False
        if self._publish_timer is not None:
            self._publish_timer.cancel()
            self._publish_timer = None

    def _drain(self) -> None:
        self._signaled = False
        if not self._serving:
            return  # before serve(): it drains; after: stop() does
        self._draining = True
        try:
            self.step_ingest()
        except Exception as exc:
            self._ingest_error = exc
            self.request_shutdown()
            return
        finally:
            self._draining = False
        if self.inbox:  # more than one step's worth: others get a turn first
            self._signaled = True
            self.loop.call_soon(self._drain)
        self._schedule_publish()

    def _schedule_publish(self) -> None:
        """Start a publish if one is due, else arm the timer for the next."""
        if self._publishing is not None or not self._serving:
            return  # its end schedules the next
        due = self.publisher.next_due()
        if due is None:
            return
        delay = due - time.monotonic()
        if delay <= 0:
            self._publishing = self.loop.create_task(self._publish_beside())
            return
        timer, at = self._publish_timer, self.loop.time() + delay
        if timer is not None:
            if timer.when() <= at:
                return  # an earlier one is armed: it looks again
            timer.cancel()
        self._publish_timer = self.loop.call_at(at, self._publish_timer_fired)

    def _publish_timer_fired(self) -> None:
        self._publish_timer = None
        self._schedule_publish()

    async def _publish_beside(self) -> None:
        try:
            await self.publisher.publish_due()
        except Exception as exc:
            self._step_failed("step_publish", exc)
        finally:
            self._publishing = None
            self._schedule_publish()  # the next one, if due

    async def stop(self) -> None:
        """Close sockets, store every bar still in memory (including the
        forming minute), publish the final state and report `stopped`."""
        self.shutdown = True
        self._stop_serving()  # also when serve() was cancelled
        deadline = time.monotonic() + self.options.shutdown_timeout
        for connection in self.connections.values():
            connection.shutdown_now()
        for connection in self.connections.values():
            connection.stop(timeout=max(0.1, deadline - time.monotonic() - 1.0))
        self.step_ingest(limit=None)
        self.suspects_expire(final=True)
        try:
            await asyncio.wait_for(
                self._final_flush(), max(0.5, deadline - time.monotonic())
            )
        except Exception:
            logger.exception("final flush failed")
        if self.recorder is not None:
            self.recorder.close()
        if self.publisher is not None:
            self.publisher.close()
        self._db.shutdown(wait=False, cancel_futures=True)

    async def _final_flush(self) -> None:
        await self.step_store_bars(final=True)
        now = self.now()
        for connection in set(self.routes.values()):  # still down: its gap ends
            self.gaps.connection_ended(connection, self._rows_of(connection), now)
        self.ledger.reconcile()
        await self.step_gaps(final=True)
        await self.alerts.record(self._in_db)
        await self.monitor.record()
        if self.publisher is not None:
            if self._publishing is not None:  # one at a time, in order
                await self._publishing
            self.publisher.interval = 0.0
            await self.publisher.publish_due()
        await self.step_health(state="failed" if self.exit_code else "stopped")

    # --- the inbox (sessions and connection threads -> loop) ---------------------
    def sink(
        self, connection: FeedConnection, received_at: float, events: list
    ) -> None:
        """Queue a batch and drain: at once on the loop (a session's frame,
        applied while its objects are warm in the cache), else scheduled once
        (lifecycle markers from connection threads)."""
        self.inbox.append((connection, received_at, events))
        if threading.get_ident() == self._loop_thread:
            if not self._draining:
                self._drain()
            return
        if not self._signaled and self.loop is not None:
            self._signaled = True
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                pass  # the loop is closed: shutting down

    def step_ingest(self, limit: int | None = 5000) -> bool:
        """Process queued batches (at most `limit`, so publishing keeps up)."""
        inbox = self.inbox
        process = self.process
        count = 0
        while inbox and (limit is None or count < limit):
            connection, received_at, events = inbox.popleft()
            process(connection, received_at, events)
            count += 1
        return not self.shutdown

    def process(
        self, connection: FeedConnection, received_at: float, events: list
    ) -> None:
        """Apply one batch of events from `connection` (one frame): normalized
        events, and `QuoteRun`s of quotes in wire values."""
        first_ts, last_ts = self.apply_events(connection, received_at, events)
        self.events_total += len(events)
        if last_ts is not None:
            connection.stats.last_event_at = received_at
            connection.last_event_ts = last_ts
            if self.event_clock is None or last_ts > self.event_clock:
                self.event_clock = last_ts
            if connection.gap_start is not None:
                self._close_gap(connection, first_ts)

    def apply_events(
        self, connection: FeedConnection, received_at: float, events: list
    ) -> tuple:
        """Apply events in order; the event times of the first and the last
        one for a symbol routed here."""
        states, routes, stats = self.states, self.routes, connection.stats
        publisher, printer = self.publisher, self._print
        alerts = self.alert_bridge if self.alert_engine is not None else None
        suspect = self.options.suspect
        first_ts = last_ts = None
        for event in events:
            kind = event.kind
            if kind == "quotes":
                self.events_total += event.count - 1  # `process` counts one
                if printer is not None:  # printed in wire order, one by one
                    span = self.apply_events(connection, received_at, event.expand())
                else:
                    span = apply_quote_run(self, connection, received_at, event)
                first, last = span
                if last is not None:
                    first_ts = first_ts or first
                    last_ts = last
                continue
            if kind == "control" or kind == "lifecycle":
                self._on_control(connection, event)
                continue
            if printer is not None:
                printer(event_json(event, connection=connection.key))
            state = states.get(event.symbol)
            if state is None or routes.get(event.symbol) is not connection:
                stats.unknown_symbols += 1
                self.problems.warning(
                    f"unknown:{connection.key}",
                    "%s: event for a symbol not subscribed here: %s",
                    connection.key,
                    event.symbol,
                )
                continue
            ts = event.ts
            if first_ts is None:
                first_ts = ts
            last_ts = ts
            if state.first_event_pending:
                self._first_event(state, ts)
            stats.by_kind[kind] += 1
            state.last_event_at = received_at
            changed = True
            if kind == "trade":
                trade_id = event.trade_id
                if trade_id is not None and state.is_duplicate(trade_id):
                    stats.duplicates += 1
                    stats.by_kind[kind] -= 1
                    continue
                stats.lags.append(received_at - ts.timestamp())
                if suspect is not None:
                    test = state.suspect
                    if test is None:
                        test = state.suspect = SuspectFilter(suspect)
                    released = test.trade(event, event.price, ts)
                    if released is not None:  # held, or held ones released
                        self._release(state, released, received_at, alerts)
                        continue
                if not state.apply_trade(ts, event.price, event.size):
                    stats.out_of_order += 1
                state.minute = (
                    self.aggregator.add_trade(event.symbol, ts, event.price, event.size)
                    or state.minute
                )
            elif kind == "quote":
                stats.lags.append(received_at - ts.timestamp())
                test = state.suspect
                if test is not None and test.held:
                    released = test.quote(event.bid_price, event.ask_price)
                    if released:
                        self._release(state, released, received_at, alerts)
                changed = state.apply_quote(
                    ts,
                    event.bid_price,
                    event.bid_size,
                    event.ask_price,
                    event.ask_size,
                )
                if not changed:
                    if changed is None:
                        stats.out_of_order += 1
                    else:
                        stats.quotes_unchanged += 1
                    continue
            elif kind == "bar":
                self._on_bar(state, event)
            elif kind == "status":
                if state.halted != event.halted:
                    state.halted = event.halted
                    state.halt_reason = event.message or event.reason
                    self.watchdog.refresh(state, received_at)
            state.received_at = received_at
            publisher.mark(state)
            if alerts is not None and kind != "quote":
                alerts.on_event(event)
        return first_ts, last_ts

    def _release(self, state: InstrumentState, trades: list, received_at, alerts):
        """Apply trades the suspect-tick test held, now confirmed, in order."""
        for event in trades:
            state.apply_trade(event.ts, event.price, event.size)
            state.minute = (
                self.aggregator.add_trade(
                    event.symbol, event.ts, event.price, event.size
                )
                or state.minute
            )
            if alerts is not None:
                alerts.on_event(event)
        if trades:
            state.received_at = received_at
            self.publisher.mark(state)

    def suspects_expire(self, *, final: bool = False) -> int:
        """Reject held trades nothing confirmed within `max_hold` of feed time
        (or of wall time when the instrument went silent; everything at
        shutdown). Returns how many were rejected."""
        config = self.options.suspect
        if config is None:
            return 0
        clock, wall, rejected = self.event_clock, time.time(), 0
        silent = 5 * config.max_hold
        for state in self.states.values():
            test = state.suspect
            if test is None or not test.held:
                continue
            if final:
                rejected += test.drop_held()
                continue
            if clock is not None:
                rejected += test.expire(clock)
            if test.held and wall - (state.last_event_at or wall) > silent:
                rejected += test.drop_held()
        if final and rejected:
            logger.info("%d held suspect trade(s) rejected at shutdown", rejected)
        return rejected

    def now(self, wall: float | None = None) -> datetime:
        """The later of the wall clock (`wall`, epoch seconds, when the caller
        has read it) and the feed's clock (a replayed or sped-up feed closes
        its minutes by its own time)."""
        wall = datetime.now(UTC) if wall is None else datetime.fromtimestamp(wall, UTC)
        clock = self.event_clock
        return clock if clock is not None and clock > wall else wall

    def _first_event(self, state: InstrumentState, ts: datetime) -> None:
        state.first_event_pending = False
        state.reconciled_until = floor_minute(ts) + MINUTE
        # After a switch of provider, the open taint ends with this minute.
        self.aggregator.close_open_taints([state.symbol], end=state.reconciled_until)
        self.subscriptions.on_first_event(state.symbol)
        self.gaps.first_event(
            self.instrument_rows.get(state.symbol), ts, state.gap_start
        )

    def _rows_of(self, connection: FeedConnection) -> list[dict]:
        return [
            self.instrument_rows[s]
            for s, c in self.routes.items()
            if c is connection and s in self.instrument_rows
        ]

    def _close_gap(self, connection: FeedConnection, first_ts: datetime) -> None:
        self.gaps.connection_back(connection, self._rows_of(connection), first_ts)

    @property
    def pending_gaps(self) -> list[PendingGap]:
        return self.gaps.pending

    def _on_bar(self, state: InstrumentState, event) -> None:
        if event.timeframe == "1d":
            state.apply_daily_bar(
                event.ts, event.open, event.high, event.low, event.close, event.volume
            )
            return
        if event.timeframe != "1m":
            return
        bar = self.aggregator.apply_bar(
            event.symbol,
            ts=event.ts,
            open=event.open,
            high=event.high,
            low=event.low,
            close=event.close,
            volume=event.volume,
            vwap=event.vwap,
            trade_count=event.trade_count,
            closed=event.closed,
        )
        if state.minute is None or bar.ts >= state.minute.ts:
            state.minute = bar
        if state.last is None:
            state.last = event.close
            state.ts = event.ts

    def _on_control(self, connection: FeedConnection, event) -> None:
        if event.kind == "lifecycle":
            self.monitor.on_lifecycle(connection, event)
            if event.state == "down":
                last = connection.last_event_ts
                if last is None:
                    last = max(self.now(), datetime.fromtimestamp(event.at, UTC))
                symbols = [s for s, c in self.routes.items() if c is connection]
                self.gaps.connection_lost(connection, symbols, last)
            return
        if event.type is ControlType.SUBSCRIPTION_ERROR:
            self.subscriptions.on_rejected(connection, event)
        elif event.type is ControlType.MALFORMED:
            self.gaps.malformed(self._rows_of(connection), self.now())
            self.problems.warning(
                f"malformed:{connection.key}",
                "%s: malformed frame: %s (its minutes go to the gap ledger)",
                connection.key,
                event.message,
            )
        elif event.type is ControlType.ERROR:
            self.problems.warning(
                f"error:{connection.key}",
                "%s: provider error: %s",
                connection.key,
                event.message,
            )

    # --- publishing ---------------------------------------------------------------------
    async def step_publish(self) -> bool:
        await self.publisher.publish_due()
        return not self.shutdown

    # --- subscriptions (streaming.subscriptions.Subscriptions) ----------------------
    async def step_subscriptions(self) -> bool:
        """Bring every connection's subscriptions in line with the instruments
        in use owned by this shard."""
        await self.subscriptions.step()
        return not self.shutdown

    @property
    def pending_rejections(self) -> list[tuple[list[str], str]]:
        return self.subscriptions.pending_rejections

    # --- bars ----------------------------------------------------------------------------
    async def step_store_bars(self, final: bool = False) -> bool:
        """Store closed minutes (and on shutdown the forming ones); held
        suspect trades past their time are rejected first."""
        self.suspects_expire(final=final)
        await self.ledger.store(final=final)
        await self.anomalies.step()
        return not self.shutdown

    # --- freshness, health, watchdog (streaming.watchdog.Watchdog), gaps --------------
    def step_freshness(self) -> bool:
        self.watchdog.step_freshness()
        return not self.shutdown

    def health(self, *, state: str = "running") -> dict:
        return worker_health(self, state=state)

    async def step_health(self, state: str = "running") -> bool:
        document = self.health(state=state)
        await self.publisher.report_health(worker_id=self.id, document=document)
        return not self.shutdown

    async def step_monitor(self) -> bool:
        """Health scores, stats lines and ops alerts (streaming.monitor)."""
        await self.monitor.step()
        return not self.shutdown

    def step_watchdog(self) -> bool:
        """Reconnect silent or stuck connections; stop when none can run."""
        return self.watchdog.step_watchdog() and not self.shutdown

    async def step_gaps(self, final: bool = False) -> bool:
        """Report missed minutes once they are over (plus `gap_settle`, so
        the backfill fetches finished bars; at shutdown every gap already
        over). Failed writes are retried on the next call."""
        await self.ledger.report_gaps(settle=0.0 if final else self.options.gap_settle)
        return not self.shutdown

    def step_reconcile(self) -> bool:
        """Closed minutes with no bar and no ledger entry go to the ledger."""
        self.ledger.reconcile()
        return not self.shutdown

    async def step_sweep(self) -> bool:
        """Holes in the stored minutes of the last hours go to the ledger."""
        await self.ledger.sweep()
        return not self.shutdown

    # --- alerts (streaming.alerting.AlertBridge) ------------------------------------
    @property
    def alert_engine(self):
        return self.alert_bridge.engine

    @alert_engine.setter
    def alert_engine(self, engine) -> None:
        self.alert_bridge.engine = engine

    @property
    def alerts(self) -> AlertOutbox:
        return self.alert_bridge.outbox

    async def step_alerts(self) -> bool:
        """Close quiet minutes, apply changed rules and record fired alerts."""
        await self.alert_bridge.step()
        return not self.shutdown

    # --- helpers -------------------------------------------------------------------------
    async def _in_db(self, function, *args, **kwargs):
        """Run ORM work on the worker's database thread. Callers report to
        `db_outage` (a function may swallow its own errors, so only the
        caller knows whether the database answered)."""
        return await self.loop.run_in_executor(
            self._db, _with_connection, function, args, kwargs
        )


def _with_connection(function, args, kwargs):
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()
