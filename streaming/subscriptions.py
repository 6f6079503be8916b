"""What a stream worker subscribes to, where, and what it restores first.

`Subscriptions` is the one owner of subscriptions, plan budgets and routing
in the stream worker: every second it reads the instruments in use, ranks
them and fills each provider connection's budget (`streaming.budget`) from
the providers failover allows (`streaming.failover`), shows the rest as over
budget, moves instruments between connections, and records symbols a
provider named unknown (retried with back-off). It logs one line with counts
per reason at start and whenever they change.

New instruments start from what `streaming.restore` loads (stored snapshot,
session figures, restart gap).

Over 400 lines: it is the one owner of subscriptions, budgets and routing in
the worker, and those decisions are made together each second.
"""

from __future__ import annotations

import inspect
import logging
import time

from django.db import DatabaseError

from core.minutes import MINUTE, floor_minute
from marketdata.events import PLAN_LIMIT, UNKNOWN_SYMBOL
from marketdata.providers import provider_class, routing
from marketdata.services import (
    instrument_stream_error_clear,
    instrument_stream_error_set,
)
from streaming import selectors
from streaming.backoff import Backoff
from streaming.budget import NO_PROVIDER, OVER_LIMIT, Allocation, allocate, plan_limit
from streaming.connection import FeedConnection, State
from streaming.failover import Router
from streaming.restore import subscription_contexts
from streaming.state import InstrumentState

logger = logging.getLogger(__name__)


class Subscriptions:
    """The worker's part that keeps each provider connection subscribed to
    the instruments in use that its shard owns, within each plan's budget,
    on the provider failover allows."""

    def __init__(self, worker) -> None:
        from marketdata.models import AssetClass

        self.worker = worker
        o = worker.options
        self.router = Router(
            chains={
                ac: routing.chain(
                    ac, providers=o.provider, crypto_providers=o.crypto_provider
                )
                for ac in AssetClass.values
            },
            switch_after=o.failover_after,
            hold=o.failback_hold,
        )
        self.allocation = Allocation()
        self.rejected: dict[str, str] = {}  # symbol -> the provider's words
        self.pending_rejections: list[tuple[list[str], str]] = []
        self.to_clear: set[str] = set()
        self.counts: dict[str, int] | None = None
        self._shortfall = ""

    # --- the step ----------------------------------------------------------------
    async def step(self) -> None:
        """Bring every connection's subscriptions in line with the instruments
        in use, the plan budgets and the providers' health."""
        w = self.worker
        extra = w.alert_bridge.symbols()
        try:
            await self._write_marks()
            rows = await w._in_db(selectors.instruments_to_stream, extra_symbols=extra)
        except DatabaseError as exc:
            w.db_outage.failed(
                exc,
                doing="reading the instruments to stream",
                impact="streaming goes on with the instruments it has",
            )
            return
        w.db_outage.succeeded()
        now = time.time()
        self.judge(now)
        shard = w.options.shard
        owned = [row for row in rows if shard.owns(row["symbol"])]
        self.rejected = {
            r["symbol"]: r["stream_error"]
            for r in owned
            if r["stream_error"] and not r["retry_due"]
        }
        wanted = {r["symbol"]: r for r in owned if r["symbol"] not in self.rejected}
        route = {
            ac: self.router.usable(ac, now)
            for ac in {r["asset_class"] for r in wanted.values()}
        }
        self.allocation = allocate(
            list(wanted.values()), route=route, limit_of=self._limit_of
        )
        await self._apply(wanted, now)
        self._log_counts(wanted)

    def _limit_of(self, name: str, asset_class: str):
        connection = self._connection_for(name, asset_class)
        limits = [plan_limit(name, asset_class), connection.limit.limit()]
        known = [n for n in limits if n is not None]
        return connection.key, (min(known) if known else None)

    async def _write_marks(self) -> None:
        w = self.worker
        if self.pending_rejections:
            rejections, self.pending_rejections = self.pending_rejections, []
            try:
                for symbols, message in rejections:
                    await w._in_db(
                        instrument_stream_error_set,
                        symbols=symbols,
                        message=message,
                    )
            except DatabaseError:
                self.pending_rejections[:0] = rejections
                raise
        if self.to_clear:
            symbols, self.to_clear = sorted(self.to_clear), set()
            try:
                await w._in_db(instrument_stream_error_clear, symbols=symbols)
            except DatabaseError:
                self.to_clear.update(symbols)
                raise

    # --- applying a plan ---------------------------------------------------------
    async def _apply(self, wanted: dict[str, dict], now: float) -> None:
        w = self.worker
        allocation = self.allocation
        added = [s for s in wanted if s not in w.states]
        removed = [s for s in w.states if s not in wanted]
        if added:
            contexts = await w._in_db(
                subscription_contexts, rows=[wanted[s] for s in added], now=now
            )
        for symbol in removed:
            w.states.pop(symbol, None)
            w.routes.pop(symbol, None)
            w.publisher.forget(symbol)
            w.anomalies.forget(symbol)
        for symbol in added:
            name = allocation.streaming.get(symbol) or allocation.over_budget.get(
                symbol, ""
            )
            self.admit(
                wanted[symbol], provider=name, now=now, context=contexts.get(symbol)
            )
        for symbol in allocation.no_provider:
            w.states[symbol].unsubscribed = NO_PROVIDER
            w.routes.pop(symbol, None)
        for symbol, name in allocation.streaming.items():
            row = wanted[symbol]
            connection = self._connection_for(name, row["asset_class"])
            self.route(w.states[symbol], row, connection, now)
        for symbol in allocation.over_budget:
            self._hold_back(w.states[symbol], wanted[symbol])
        for symbol in added:
            w.watchdog.refresh(w.states[symbol], now)
            w.publisher.mark(w.states[symbol])
        w.coldstart.add(added)
        self._sync_connections()

    def admit(
        self, row: dict, *, provider: str, now: float, context: dict | None = None
    ) -> InstrumentState:
        """Start keeping the live state of `row`'s instrument (a row of
        `streaming.selectors.instruments_to_stream`), restored from `context`
        (`streaming.restore.subscription_contexts`); it waits for its first
        event and streams once `route` puts it on a connection."""
        w = self.worker
        context = context or {}
        state = InstrumentState(
            symbol=row["symbol"],
            instrument_id=row["id"],
            asset_class=row["asset_class"],
            provider=provider,
        )
        state.restore(snapshot=context.get("snapshot"), session=context.get("session"))
        state.subscribed_at = now
        state.gap_start = context.get("gap_start")
        w.states[state.symbol] = state
        w.instrument_rows[state.symbol] = row
        return state

    def route(
        self, state: InstrumentState, row: dict, connection: FeedConnection, now: float
    ) -> None:
        """Stream the admitted instrument `state` on `connection` (a move from
        another connection is a failover or fail-back, see `_switch`)."""
        w = self.worker
        name = connection.provider_name
        current = w.routes.get(state.symbol)
        if current is connection:
            return
        namespace = routing.symbol_namespace(name)
        connection.provider.map_symbol(
            state.symbol, (row["provider_symbols"] or {}).get(namespace)
        )
        if current is not None:
            self._switch(state, row, current, connection)
        elif state.unsubscribed:
            state.subscribed_at = now  # staleness counts from here
        state.unsubscribed = ""
        state.provider = row["provider"] = name
        w.routes[state.symbol] = connection
        w.watchdog.refresh(state, now)
        w.publisher.mark(state)

    def _switch(self, state, row, old, new) -> None:
        """Move a streaming instrument to another connection (failover or
        fail-back). Bars stay single-source per minute: from the switch's
        minute on, trade-built bars are not stored and the minutes up to the
        new provider's first event go to the gap ledger (backfilled from the
        primary's history)."""
        w = self.worker
        minute = floor_minute(w.now())
        # A dead connection lost its minutes from its own gap's start on.
        start = min(minute, old.gap_start or minute, state.gap_start or minute)
        w.aggregator.taint([state.symbol], start=start, end=None)
        state.gap_start = start
        state.first_event_pending = True
        state.reconciled_until = None
        logger.info(
            "%s moves from %s to %s (%s)",
            state.symbol,
            old.provider_name,
            new.provider_name,
            "fail-back" if self._rank(new, row) < self._rank(old, row) else "failover",
        )

    def _rank(self, connection, row) -> int:
        chain = self.router.chain(row["asset_class"])
        name = connection.provider_name
        return chain.index(name) if name in chain else len(chain)

    def _hold_back(self, state: InstrumentState, row: dict) -> None:
        """An instrument over its plan's budget: unsubscribed, shown as such.
        A minute it was streaming in goes to the gap ledger whole."""
        w = self.worker
        if state.symbol in w.routes:
            w.routes.pop(state.symbol)
            minute = floor_minute(w.now())
            w.aggregator.taint([state.symbol], start=minute, end=minute + MINUTE)
            w.gaps.add(row, minute, minute + MINUTE)
            state.reconciled_until = None
            state.first_event_pending = True
        if state.unsubscribed != OVER_LIMIT:
            state.unsubscribed = OVER_LIMIT
            w.watchdog.refresh(state, time.time())
            w.publisher.mark(state)

    def _sync_connections(self) -> None:
        w = self.worker
        by_connection: dict[str, set[str]] = {key: set() for key in w.connections}
        for symbol, connection in w.routes.items():
            by_connection[connection.key].add(symbol)
        for key, symbols in by_connection.items():
            connection = w.connections[key]
            before = set(connection.desired)
            if not symbols:
                # Its instruments moved on, with their own gaps (`_switch`).
                connection.gap_start = None
            if symbols == before:
                continue
            connection.set_symbols(symbols)
            logger.info(
                "%s: subscribed %d instruments (+%d, -%d)",
                key,
                len(symbols),
                len(symbols - before),
                len(before - symbols),
            )
            if not connection.started and symbols:
                connection.start(self.worker.loop)

    # --- events from the connections ---------------------------------------------
    def on_rejected(self, connection: FeedConnection, event) -> None:
        """A SUBSCRIPTION_ERROR (the connection has already held the symbols
        back): only an unknown symbol is marked on the instrument."""
        reason = getattr(event, "reason", "")
        if reason == PLAN_LIMIT:
            self.worker.problems.warning(
                f"plan-limit:{connection.key}",
                "%s: the provider refused subscriptions for the plan's symbol "
                "limit (%s); streaming the %d it accepted, the rest are over "
                "budget (set %s_SYMBOL_LIMIT to the plan's limit)",
                connection.key,
                event.message or event.code,
                len(connection.subscribed),
                connection.provider_name.upper(),
            )
        elif reason == UNKNOWN_SYMBOL:
            symbols = list(event.symbols or connection.last_batch)
            if symbols:
                message = event.message or "unknown symbol"
                self.pending_rejections.append((symbols, message))

    def on_first_event(self, symbol: str) -> None:
        row = self.worker.instrument_rows.get(symbol)
        if row is not None and row.get("stream_error"):
            row["stream_error"] = ""
            self.to_clear.add(symbol)

    # --- health and failover -----------------------------------------------------
    def judge(self, now: float) -> None:
        """Give each provider with started connections its health verdict
        (`streaming.health_score`: down past a grace, pings unanswered,
        silent while open, or a low score)."""
        w = self.worker
        by_provider: dict[str, list[FeedConnection]] = {}
        for connection in w.connections.values():
            if connection.started:
                by_provider.setdefault(connection.provider_name, []).append(connection)
        for name, connections in by_provider.items():
            reasons = []
            for connection in connections:
                score = w.monitor.score(connection, now)
                if not score.healthy:
                    reasons.append(f"{connection.key}: {', '.join(score.reasons)}")
            if reasons:
                self.router.observe(name, False, reasons, now)
            elif all(c.state == State.LIVE for c in connections):
                self.router.observe(name, True, [], now)
            # else: (re)connecting within the grace: no news either way

    # --- reporting ---------------------------------------------------------------
    def _log_counts(self, wanted: dict[str, dict]) -> None:
        counts = self.allocation.counts(len(self.rejected))
        if counts != self.counts:
            self.counts = counts
            logger.info(
                "instruments: %d streaming, %d over plan limit, %d rejected "
                "(unknown to the provider; retried with back-off, or clear in "
                "admin), %d with no provider",
                counts["streaming"],
                counts["over_budget"],
                counts["rejected"],
                counts["no_provider"],
            )
        short = sorted(
            s for s in self.allocation.over_budget if wanted[s].get("position")
        )
        shortfall = ", ".join(short)
        if shortfall != self._shortfall:
            self._shortfall = shortfall
            if short:
                logger.warning(
                    "the plan's symbol budget is smaller than the positions: "
                    "%d position instrument(s) not streamed: %s",
                    len(short),
                    shortfall,
                )

    def document(self, now: float) -> dict:
        """For the health document: counts, budgets, who waits and why."""
        w = self.worker
        budgets = []
        for connection in w.connections.values():
            name = connection.provider_name
            configured = plan_limit(name, connection.asset_class)
            budgets.append(
                {
                    "connection": connection.key,
                    "limit": configured,
                    "learned_limit": connection.limit.limit(),
                    "used": sum(1 for c in w.routes.values() if c is connection),
                }
            )
        return {
            "counts": self.allocation.counts(len(self.rejected)),
            "over_budget": sorted(self.allocation.over_budget),
            "rejected": dict(sorted(self.rejected.items())),
            "no_provider": sorted(self.allocation.no_provider),
            "budgets": budgets,
            "providers": self.router.documents(now),
        }

    # --- connections -------------------------------------------------------------
    def _connection_for(self, name: str, asset_class: str) -> FeedConnection:
        w = self.worker
        for connection in w.connections.values():
            if connection.provider_name == name and asset_class in connection.serves:
                return connection
        options = {}
        accepts = inspect.signature(provider_class(name).__init__).parameters
        o = w.options
        if o.msgpack and "use_msgpack" in accepts:
            # Binary frames decode with timestamps already parsed: ~30 % less
            # CPU per event than JSON text (Alpaca and the simulator).
            options["use_msgpack"] = True
        provider = routing.provider_build(
            name=name, instruments=[], rate_limited=False, **options
        )
        url = provider.stream_url(asset_class=asset_class, symbols=())
        for connection in w.connections.values():
            if connection.provider_name == name and connection.base_url == url:
                connection.serves.add(asset_class)
                return connection
        key = f"{name}:{asset_class}"
        connection = FeedConnection(
            key=key,
            provider=provider,
            asset_class=asset_class,
            sink=w.sink,
            recorder=w.recorder,
            backoff=Backoff(
                base=o.backoff_base, cap=o.backoff_cap, reset_after=o.backoff_reset
            ),
            connection_limit_backoff=o.connection_limit_backoff,
            ping_timeout=o.ping_timeout,
        )
        connection.base_url = url
        connection.serves = {asset_class}
        w.connections[key] = connection
        return connection
