"""What a stream worker subscribes to, where, and what it restores first.

`provider_for` routes an asset class to a provider (equities to the primary
one, crypto to `TAPELINE_CRYPTO_PROVIDER` or the primary one when it streams
crypto). `subscription_contexts` loads, for newly subscribed instruments, what
a restarted worker continues from: the stored snapshot (its `seq` keeps
increasing), the session figures from stored bars, and where its restart gap
starts (the minute after the last stored bar, within `restart_window`); a
forming minute the previous run stored at shutdown is deleted so the backfill
can store the provider's complete bar. Redis being away does not stop a
subscription: it only loses the snapshot's seq and defers the partial minutes.
`Subscriptions` is the stream worker's part that applies all this.
"""

from __future__ import annotations

import inspect
import logging
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError

from streaming import selectors, services
from streaming.aggregator import MINUTE, floor_minute
from streaming.backoff import Backoff
from streaming.connection import FeedConnection
from streaming.snapshots import snapshots_get_safe
from streaming.state import InstrumentState, day_bounds

logger = logging.getLogger("streaming.worker")


def provider_for(asset_class: str, *, primary: str, crypto: str = "") -> str | None:
    """The provider that streams `asset_class`, or None when none configured does."""
    from marketdata.providers import provider_class

    if asset_class == "crypto" and crypto:
        return crypto
    if asset_class in provider_class(primary).asset_classes:
        return primary
    return None


def subscription_contexts(
    *, rows: list[dict], now: float, restart_window: float
) -> dict[str, dict]:
    """Per symbol: {"snapshot", "session", "gap_start"} (database and Redis)."""
    at = datetime.fromtimestamp(now, UTC)
    first = floor_minute(at)
    symbols = [r["symbol"] for r in rows]
    # Redis away: start without the stored snapshot (seq restarts, which a
    # client's `snapshot` frame resets) and leave partial minutes for later.
    snapshots = snapshots_get_safe(symbols=symbols) or {}
    partial = services.partial_bars_take_safe(symbols=symbols)
    window = timedelta(seconds=restart_window)
    contexts = {}
    for row in rows:
        symbol = row["symbol"]
        if symbol in partial:
            services.bar_partial_discard(instrument_id=row["id"], ts=partial[symbol])
        day_start, day_end = day_bounds(row["asset_class"], at)
        session = selectors.session_figures(
            instrument_id=row["id"], day_start=day_start, day_end=day_end
        )
        last_ts = selectors.last_minute_bar_ts(instrument_id=row["id"], before=first)
        gap_start = None
        if last_ts is not None and first - window <= last_ts < first - MINUTE:
            gap_start = last_ts + MINUTE
        contexts[symbol] = {
            "snapshot": snapshots.get(symbol),
            "session": session,
            "gap_start": gap_start,
        }
    return contexts


class Subscriptions:
    """The worker's part that keeps each provider connection subscribed to
    the instruments in use (watchlists, positions, active alert rules) that
    its shard owns: new instruments are routed, restored and subscribed,
    removed ones dropped, refused ones recorded on the instrument."""

    def __init__(self, worker) -> None:
        self.worker = worker

    @property
    def crypto_provider_name(self) -> str:
        o = self.worker.options
        return o.crypto_provider or settings.TAPELINE_CRYPTO_PROVIDER or ""

    def provider_for(self, asset_class: str) -> str | None:
        return provider_for(
            asset_class,
            primary=self.worker.options.provider or settings.TAPELINE_PROVIDER,
            crypto=self.crypto_provider_name,
        )

    async def step(self) -> None:
        """Bring every connection's subscriptions in line with the instruments
        in use (watchlists, positions, active alert rules) owned by this shard."""
        w = self.worker
        extra = w.alert_bridge.symbols()
        try:
            rows = await w._in_db(selectors.instruments_to_stream, extra_symbols=extra)
        except DatabaseError as exc:
            w.db_outage.failed(
                exc,
                doing="reading the instruments to stream",
                impact="streaming goes on with the instruments it has",
            )
            return
        w.db_outage.succeeded()
        shard = w.options.shard
        wanted = {row["symbol"]: row for row in rows if shard.owns(row["symbol"])}
        added = [s for s in wanted if s not in w.states]
        removed = [s for s in w.states if s not in wanted]
        if w.pending_rejections:
            rejections, w.pending_rejections = w.pending_rejections, []
            for symbols, message in rejections:
                await w._in_db(
                    services.instrument_stream_error_set,
                    symbols=symbols,
                    message=message,
                )
        if not added and not removed:
            return
        now = time.time()
        contexts = await w._in_db(self._contexts_load, [wanted[s] for s in added], now)
        w.instrument_rows.update({s: wanted[s] for s in added})
        for symbol in removed:
            w.states.pop(symbol, None)
            w.routes.pop(symbol, None)
            w.publisher.dirty.pop(symbol, None)
        for symbol in added:
            row = wanted[symbol]
            name = self.provider_for(row["asset_class"])
            if name is None:
                if row["asset_class"] not in w.unroutable_logged:
                    w.unroutable_logged.add(row["asset_class"])
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
            w.watchdog.refresh(state, now)
            w.states[symbol] = state
            w.routes[symbol] = connection
            w.publisher.mark(state)
            state.gap_start = context.get("gap_start")
        by_connection: dict[str, set[str]] = {key: set() for key in w.connections}
        for symbol, connection in w.routes.items():
            by_connection[connection.key].add(symbol)
        for key, symbols in by_connection.items():
            connection = w.connections[key]
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
        return

    def _connection_for(self, name: str, asset_class: str) -> FeedConnection:
        w = self.worker
        o = w.options
        from marketdata.history import provider_build
        from marketdata.providers import provider_class

        options = {}
        accepts = inspect.signature(provider_class(name).__init__).parameters
        if o.msgpack and "use_msgpack" in accepts:
            # Binary frames decode with timestamps already parsed: ~30 % less
            # CPU per event than JSON text (Alpaca and the simulator).
            options["use_msgpack"] = True
        provider = provider_build(
            name=name, instruments=[], rate_limited=False, **options
        )
        url = provider.stream_url(asset_class=asset_class, symbols=())
        for connection in w.connections.values():
            if connection.provider_name == name and connection.base_url == url:
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
        )
        connection.base_url = url
        w.connections[key] = connection
        return connection

    def _contexts_load(self, rows: list[dict], now: float) -> dict[str, dict]:
        return subscription_contexts(
            rows=rows,
            now=now,
            restart_window=self.worker.options.restart_backfill_window,
        )
