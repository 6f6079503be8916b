"""The stream worker behind `manage.py start_streams`.

One asyncio event loop owns all state. Provider connections
(`streaming.connection.FeedConnection`, one receive thread each) append parsed
batches to `inbox`; the loop drains it (`step_ingest`), updates each
instrument's state and minute bars, and publishes coalesced updates
(`step_publish`, see `streaming.publisher` for the channel-layer contract).
Periodic steps run beside it: subscriptions (`step_subscriptions`, every 1 s:
watchlist/position/alert changes reach the provider within 2 s without a
reconnect), bar storage (`step_store_bars`), freshness, health (every 2 s),
the connection watchdog (stale feed, auth timeout, pings), and the
nothing-lost steps of `streaming.ledger.MinuteLedger` (gap reports,
per-minute reconciliation, the periodic sweep).
Every step returns whether the worker should keep running; tests call them
directly. Database work runs on one dedicated thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import close_old_connections

from core.outage import Outage
from core.redis import redis_outage
from marketdata import calendar
from marketdata.events import ControlType
from streaming import selectors, services
from streaming.aggregator import MINUTE, MinuteAggregator, floor_minute
from streaming.alerting import AlertOutbox, alert_engine_build, alert_symbols
from streaming.backoff import Backoff
from streaming.connection import FeedConnection, State
from streaming.freshness import freshness_of
from streaming.gaps import GapTracker, PendingGap
from streaming.health import WorkerRates, worker_health
from streaming.ledger import MinuteLedger
from streaming.printer import event_json
from streaming.publisher import Publisher
from streaming.shard import Shard
from streaming.state import InstrumentState
from streaming.stats import RateLimitedLog
from streaming.subscriptions import provider_for, subscription_contexts

logger = logging.getLogger("streaming.worker")


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
    ping_every: float = 10.0
    shutdown_timeout: float = 4.0

    def __post_init__(self) -> None:
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
        if self.feed_stale_after is None:
            # A whole connection silent this long while a market it serves is
            # open is broken (Alpaca's mute-but-open socket); twice the
            # per-instrument threshold, so a few quiet symbols do not churn it.
            self.feed_stale_after = 2 * self.stale_after


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
        self._signaled = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None
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
        self.gaps = GapTracker(aggregator=self.aggregator)
        self.ledger = MinuteLedger(
            self,
            settle=o.reconcile_settle,
            sweep_hours=o.sweep_hours,
            unstored_minutes=o.unstored_minutes,
        )
        self.pending_rejections: list[tuple[list[str], str]] = []
        self.unroutable_logged: set[str] = set()
        self.recorder = None
        self.alert_engine = alert_engine
        # One outage tracker for every part that uses the database.
        self.db_outage = Outage("PostgreSQL", logger=logger)
        self.alerts = AlertOutbox(outage=self.db_outage)

        self.events_total = 0
        self.bars_stored = 0
        self.bar_store_failures = 0
        self.gaps_reported = 0
        self.rates = WorkerRates()
        self.problems = RateLimitedLog(logger)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-db")
        self._last_ping = time.monotonic()
        self._print = None
        self._step_failed_at: dict[str, float] = {}
        self._alerts_pending = False

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
        self.wake = asyncio.Event()
        if self._layer is None:
            from channels.layers import get_channel_layer

            self._layer = get_channel_layer()
        self.publisher = Publisher(layer=self._layer, hz=self.options.publish_hz)
        if self.options.print_events:
            out = self.stdout or sys.stdout
            buffer = getattr(out, "buffer", None)
            self._print = (
                buffer.write
                if buffer is not None
                else (lambda data: out.write(data.decode()))
            )
        if self.options.record:
            from marketdata.simulator.replay import FrameRecorder

            # Thread-safe: every receive thread writes to it.
            self.recorder = FrameRecorder(self.options.record)
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self.loop.add_signal_handler(signum, self.request_shutdown)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests): call request_shutdown()
        if self.alert_engine is None:
            await self._alerts_build()
        logger.info(
            "stream worker %s starting (provider %s%s)",
            self.id,
            self.options.provider or settings.TAPELINE_PROVIDER,
            f", crypto {self.crypto_provider_name}"
            if self.crypto_provider_name
            else "",
        )
        try:
            await self.step_subscriptions()
        except Exception:  # the database may come up later: the step retries
            logger.exception("loading the instruments to stream failed; retrying")
        self.ready = True

    def request_shutdown(self) -> None:
        if not self.shutdown:
            logger.info("stream worker %s stopping", self.id)
        self.shutdown = True
        if self.wake is not None:
            self.wake.set()

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
            except Exception as exc:  # noqa: BLE001 - the step runs again
                self._step_failed(step.__name__, exc)
                keep_going = True
            if not keep_going:
                self.request_shutdown()
                return
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _step_failed(self, name: str, exc: Exception) -> None:
        """A dependency that is away is one outage (one line when it starts,
        a reminder a minute, one when it ends); anything else is a bug worth
        a traceback, once a minute per step."""
        from django.db import DatabaseError
        from redis.exceptions import RedisError

        if isinstance(exc, DatabaseError):
            self.db_outage.failed(exc, doing=f"the {name} step")
        elif isinstance(exc, RedisError):
            redis_outage().failed(exc, doing=f"the {name} step")
        else:
            now = time.monotonic()
            if now - self._step_failed_at.get(name, -1e9) >= 60:
                self._step_failed_at[name] = now
                logger.error("stream worker step %s failed", name, exc_info=exc)

    async def _ingest_loop(self) -> None:
        wake = self.wake
        while not self.shutdown:
            if not self.inbox:
                due = self.publisher.next_due()
                timeout = 0.25 if due is None else max(0.0, due - time.monotonic())
                if timeout > 0:
                    try:
                        await asyncio.wait_for(wake.wait(), min(timeout, 0.25))
                    except TimeoutError:
                        pass
            wake.clear()
            self._signaled = False
            self.step_ingest()
            await self.step_publish()
            if self.inbox:
                await asyncio.sleep(0)  # let the periodic steps in

    async def stop(self) -> None:
        """Close sockets, store every bar still in memory (including the
        forming minute), publish the final state and report `stopped`."""
        self.shutdown = True
        deadline = time.monotonic() + self.options.shutdown_timeout
        for connection in self.connections.values():
            connection._stop.set()
            connection._shutdown_socket()
        for connection in self.connections.values():
            connection.stop(timeout=max(0.1, deadline - time.monotonic() - 1.0))
        self.step_ingest(limit=None)
        try:
            await asyncio.wait_for(
                self._final_flush(), max(0.5, deadline - time.monotonic())
            )
        except Exception:
            logger.exception("final flush failed")
        if self.recorder is not None:
            self.recorder.close()
        self._db.shutdown(wait=False, cancel_futures=True)

    async def _final_flush(self) -> None:
        await self.step_store_bars(final=True)
        self.ledger.reconcile()
        await self.step_gaps(final=True)
        await self.alerts.record(self._in_db)
        if self.publisher is not None:
            self.publisher.interval = 0.0
            await self.publisher.publish_due()
        await self.step_health(state="failed" if self.exit_code else "stopped")

    # --- the inbox (receive threads -> loop) -------------------------------------------
    def sink(
        self, connection: FeedConnection, received_at: float, events: list
    ) -> None:
        """Called from receive threads: queue a batch, wake the loop once."""
        self.inbox.append((connection, received_at, events))
        if not self._signaled and self.loop is not None:
            self._signaled = True
            try:
                self.loop.call_soon_threadsafe(self.wake.set)
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
        """Apply one batch of normalized events from `connection`."""
        states, routes, stats = self.states, self.routes, connection.stats
        publisher, printer = self.publisher, self._print
        engine = self.alert_engine
        first_ts = last_ts = None
        for event in events:
            kind = event.kind
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
                if not state.apply_trade(ts, event.price, event.size):
                    stats.out_of_order += 1
                state.minute = (
                    self.aggregator.add_trade(event.symbol, ts, event.price, event.size)
                    or state.minute
                )
            elif kind == "quote":
                stats.lags.append(received_at - ts.timestamp())
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
                    self._refresh_freshness(state, time.time())
            state.received_at = received_at
            publisher.mark(state)
            if engine is not None and kind != "quote":
                self._alerts_on_event(engine, event, state)
        self.events_total += len(events)
        if last_ts is not None:
            stats.last_event_at = received_at
            connection.last_event_ts = last_ts
            if self.event_clock is None or last_ts > self.event_clock:
                self.event_clock = last_ts
            if connection.gap_start is not None:
                self._close_gap(connection, first_ts)

    def now(self) -> datetime:
        """The later of the wall clock and the feed's clock (a replayed or
        sped-up feed closes its minutes by its own time)."""
        wall = datetime.now(UTC)
        clock = self.event_clock
        return clock if clock is not None and clock > wall else wall

    def _first_event(self, state: InstrumentState, ts: datetime) -> None:
        state.first_event_pending = False
        state.reconciled_until = floor_minute(ts) + MINUTE
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
            if event.state == "down":
                last = connection.last_event_ts
                if last is None:
                    last = max(self.now(), datetime.fromtimestamp(event.at, UTC))
                symbols = [s for s, c in self.routes.items() if c is connection]
                self.gaps.connection_lost(connection, symbols, last)
            return
        if event.type is ControlType.SUBSCRIPTION_ERROR:
            symbols = list(event.symbols or connection._last_batch)
            message = next(
                (connection.rejected[s] for s in symbols if s in connection.rejected),
                event.message or "rejected by the provider",
            )
            if symbols:
                self.pending_rejections.append((symbols, message))
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

    # --- subscriptions ------------------------------------------------------------------
    @property
    def crypto_provider_name(self) -> str:
        return self.options.crypto_provider or settings.TAPELINE_CRYPTO_PROVIDER or ""

    def provider_for(self, asset_class: str) -> str | None:
        return provider_for(
            asset_class,
            primary=self.options.provider or settings.TAPELINE_PROVIDER,
            crypto=self.crypto_provider_name,
        )

    async def step_subscriptions(self) -> bool:
        """Bring every connection's subscriptions in line with the instruments
        in use (watchlists, positions, active alert rules) owned by this shard."""
        extra = self._alert_symbols()
        rows = await self._in_db(selectors.instruments_to_stream, extra_symbols=extra)
        shard = self.options.shard
        wanted = {row["symbol"]: row for row in rows if shard.owns(row["symbol"])}
        added = [s for s in wanted if s not in self.states]
        removed = [s for s in self.states if s not in wanted]
        if self.pending_rejections:
            rejections, self.pending_rejections = self.pending_rejections, []
            for symbols, message in rejections:
                await self._in_db(
                    services.instrument_stream_error_set,
                    symbols=symbols,
                    message=message,
                )
        if not added and not removed:
            return not self.shutdown
        now = time.time()
        contexts = await self._in_db(
            self._contexts_load, [wanted[s] for s in added], now
        )
        self.instrument_rows.update({s: wanted[s] for s in added})
        for symbol in removed:
            self.states.pop(symbol, None)
            self.routes.pop(symbol, None)
            self.publisher.dirty.pop(symbol, None)
        for symbol in added:
            row = wanted[symbol]
            name = self.provider_for(row["asset_class"])
            if name is None:
                if row["asset_class"] not in self.unroutable_logged:
                    self.unroutable_logged.add(row["asset_class"])
                    logger.warning(
                        "no configured provider streams %s instruments (%s and "
                        "others skipped): choose one with --provider / "
                        "TAPELINE_PROVIDER (equities) or --crypto-provider / "
                        "TAPELINE_CRYPTO_PROVIDER (crypto)",
                        row["asset_class"],
                        symbol,
                    )
                continue
            connection = self._connection_for(name, row["asset_class"])
            namespace = (
                getattr(type(connection.provider), "symbol_namespace", None) or name
            )
            provider_symbol = (row["provider_symbols"] or {}).get(namespace) or symbol
            connection.provider.to_provider[symbol] = provider_symbol
            connection.provider.to_canonical[provider_symbol] = symbol
            row["provider"] = name
            state = InstrumentState(
                symbol=symbol,
                instrument_id=row["id"],
                asset_class=row["asset_class"],
                provider=name,
            )
            context = contexts.get(symbol, {})
            state.restore(
                snapshot=context.get("snapshot"), session=context.get("session")
            )
            state.subscribed_at = now
            self._refresh_freshness(state, now)
            self.states[symbol] = state
            self.routes[symbol] = connection
            self.publisher.mark(state)
            state.gap_start = context.get("gap_start")
        by_connection: dict[str, set[str]] = {key: set() for key in self.connections}
        for symbol, connection in self.routes.items():
            by_connection[connection.key].add(symbol)
        for key, symbols in by_connection.items():
            connection = self.connections[key]
            before = set(connection.desired)
            connection.set_symbols(symbols)
            if symbols - before or before - symbols:
                logger.info(
                    "%s: subscribed %d instruments (+%d, -%d)",
                    key,
                    len(symbols),
                    len(symbols - before),
                    len(before - symbols),
                )
            if connection._thread is None and symbols:
                connection.start()
        return not self.shutdown

    def _connection_for(self, name: str, asset_class: str) -> FeedConnection:
        from marketdata.history import provider_build
        from marketdata.providers import provider_class

        options = {}
        accepts = inspect.signature(provider_class(name).__init__).parameters
        if self.options.msgpack and "use_msgpack" in accepts:
            # Binary frames decode with timestamps already parsed: ~30 % less
            # CPU per event than JSON text (Alpaca and the simulator).
            options["use_msgpack"] = True
        provider = provider_build(
            name=name, instruments=[], rate_limited=False, **options
        )
        url = provider.stream_url(asset_class=asset_class, symbols=())
        for connection in self.connections.values():
            if connection.provider_name == name and connection.base_url == url:
                return connection
        o = self.options
        key = f"{name}:{asset_class}"
        connection = FeedConnection(
            key=key,
            provider=provider,
            asset_class=asset_class,
            sink=self.sink,
            recorder=self.recorder,
            backoff=Backoff(
                base=o.backoff_base, cap=o.backoff_cap, reset_after=o.backoff_reset
            ),
            connection_limit_backoff=o.connection_limit_backoff,
        )
        connection.base_url = url
        self.connections[key] = connection
        return connection

    def _contexts_load(self, rows: list[dict], now: float) -> dict[str, dict]:
        return subscription_contexts(
            rows=rows, now=now, restart_window=self.options.restart_backfill_window
        )

    # --- bars ----------------------------------------------------------------------------
    async def step_store_bars(self, final: bool = False) -> bool:
        """Store closed minutes (and on shutdown the forming ones)."""
        await self.ledger.store(final=final)
        return not self.shutdown

    # --- freshness, health, watchdog, gaps ------------------------------------------
    def _refresh_freshness(
        self, state: InstrumentState, now: float, market_open=None
    ) -> None:
        if market_open is None:
            market_open = calendar.is_open(
                state.asset_class, datetime.fromtimestamp(now, UTC)
            )
        freshness = freshness_of(
            halted=state.halted,
            market_open=market_open,
            last_event_at=state.last_event_at,
            subscribed_at=state.subscribed_at,
            now=now,
            stale_after=self.options.stale_after,
        )
        if freshness != state.freshness:
            state.freshness = freshness
            self.publisher.mark(state)
            if self.alert_engine is not None:
                self._alerts_freshness(state.symbol, freshness)

    def step_freshness(self) -> bool:
        now = time.time()
        at = datetime.fromtimestamp(now, UTC)
        open_by_class: dict[str, bool] = {}
        for state in self.states.values():
            market_open = open_by_class.get(state.asset_class)
            if market_open is None:
                market_open = open_by_class[state.asset_class] = calendar.is_open(
                    state.asset_class, at
                )
            self._refresh_freshness(state, now, market_open)
        return not self.shutdown

    def health(self, *, state: str = "running") -> dict:
        return worker_health(self, state=state)

    async def step_health(self, state: str = "running") -> bool:
        document = self.health(state=state)
        await self.publisher.report_health(worker_id=self.id, document=document)
        return not self.shutdown

    def step_watchdog(self) -> bool:
        """Reconnect silent or stuck connections; stop when none can run."""
        now = time.time()
        o = self.options
        ping = time.monotonic() - self._last_ping >= o.ping_every
        if ping:
            self._last_ping = time.monotonic()
        any_open_market = {
            ac: calendar.is_open(ac, datetime.fromtimestamp(now, UTC))
            for ac in {s.asset_class for s in self.states.values()}
        }
        for connection in self.connections.values():
            if connection.state == State.AUTHENTICATING:
                if now - connection.state_since > o.auth_timeout:
                    connection.force_reconnect(
                        f"no authentication answer within {o.auth_timeout:.0f}s"
                    )
            elif connection.state == State.LIVE:
                markets_open = any(
                    any_open_market.get(self.states[s].asset_class, False)
                    for s in list(connection.subscribed)
                    if s in self.states
                )
                last = connection.stats.last_event_at or connection.authenticated_at
                if (
                    markets_open
                    and connection.subscribed
                    and last is not None
                    and now - max(last, connection.authenticated_at or 0)
                    > o.feed_stale_after
                ):
                    connection.force_reconnect(
                        f"no market data for {o.feed_stale_after:.0f}s while the market is open"
                    )
                elif ping:
                    connection.ping()
        started = [c for c in self.connections.values() if c._thread is not None]
        if started and all(c.state == State.AUTH_FAILED for c in started):
            logger.error(
                "stream worker %s: every provider connection failed to authenticate; exiting",
                self.id,
            )
            self.exit_code = 2
            return False
        return not self.shutdown

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

    # --- alerts (alerts.engine.AlertEngine) ------------------------------------------
    def _alert_symbols(self) -> set[str]:
        return alert_symbols(self.alert_engine)

    def _alerts_on_event(self, engine, event, state: InstrumentState) -> None:
        try:
            fired = engine.on_event(event, None)
        except Exception:
            self.problems.warning(
                "alerts", "alert evaluation failed for %s", event.symbol
            )
            logger.debug("alert evaluation failed", exc_info=True)
            return
        if fired:
            self.alerts.add(fired)

    def _alerts_freshness(self, symbol: str, freshness: str) -> None:
        try:
            self.alert_engine.set_freshness(symbol, freshness)
        except Exception:
            self.problems.warning("alerts-freshness", "alert freshness update failed")

    async def step_alerts(self) -> bool:
        """Close quiet minutes, apply changed rules (read on the database
        thread, applied here so evaluation never races an index update) and
        record fired alerts (kept while the database is away)."""
        engine = self.alert_engine
        if engine is None:
            if self._alerts_pending:
                await self._alerts_build()
        else:
            try:
                for state in self.states.values():
                    if state.prev_close is not None:
                        engine.set_prev_close(state.symbol, state.prev_close)
                self.alerts.add(engine.on_clock(datetime.now(UTC)))
            except Exception:  # noqa: BLE001 - one bad rule must not stop the rest
                self.problems.warning("alerts-clock", "alert clock step failed")
                logger.debug("alert clock step failed", exc_info=True)
            try:
                changes = await self._in_db(engine.fetch_changes)
            except Exception as exc:  # noqa: BLE001 - the database is away
                self.db_outage.failed(exc, doing="reading alert rule changes")
            else:
                if changes is not None:
                    engine.apply_changes(changes)
        await self.alerts.record(self._in_db)
        return not self.shutdown

    async def _alerts_build(self) -> None:
        try:
            self.alert_engine = await self._in_db(alert_engine_build)
            self._alerts_pending = False
        except Exception:
            if not self._alerts_pending:
                logger.exception("loading alert rules failed; retrying")
            self._alerts_pending = True

    # --- helpers -------------------------------------------------------------------------
    async def _in_db(self, function, *args, **kwargs):
        """Run ORM work on the worker's database thread. Callers report a
        failure to `db_outage` (they know what it means); any success ends it."""
        result = await self.loop.run_in_executor(
            self._db, _with_connection, function, args, kwargs
        )
        self.db_outage.succeeded()
        return result


def _with_connection(function, args, kwargs):
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()
