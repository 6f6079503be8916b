"""Cold-start quotes: the stream worker's part that fills each new instrument's
state from its provider's snapshot endpoint, so a row shows last, change and
change % at once, whatever the hour and whether or not history was loaded.

Instruments the subscription step adds (`add`, also at start) wait in
`pending`; `step` (periodic, on the loop) starts at most one fetch per
provider, which runs `Provider.fetch_snapshots` on this part's own threads in
batches of the provider's `snapshot_batch` (Finnhub one symbol per request,
paced by the shared rate limiter) and applies each batch on the loop as it
arrives. The provider is the one that streams the instrument
(`InstrumentState.provider`), built like the history loader builds it, with
the streaming connection's symbol mapping. A failed or rate-limited fetch
(after the HTTP client's own retries) puts its symbols back with an
exponential back-off per provider; rows keep what is known meanwhile.

`snapshot_apply` never moves a row backwards: the last price only changes for
a snapshot trade newer than the newest trade the state has seen, the quote
likewise; the day figures and the previous close are the provider's for the
snapshot's day (the state's day when it has seen nothing of its own yet).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal

from core.logs import cause
from marketdata.providers.base import Provider
from marketdata.providers.snapshots import Snapshot
from streaming.state import InstrumentState, day_bounds

logger = logging.getLogger(__name__)


def snapshot_apply(state: InstrumentState, snap: Snapshot) -> bool:
    """Apply `snap` to `state`; True when anything shown changed."""
    before = (
        state.last, state.bid, state.ask, state.open, state.high, state.low,
        state.volume, state.prev_close,
    )  # fmt: skip
    _apply_day(state, snap)
    newest: list[datetime] = []
    if snap.last is not None and snap.last_ts is not None and _newer_trade(state, snap):
        state.last, state.last_trade_ts = snap.last, snap.last_ts
        state.last_size = snap.last_size
        newest.append(snap.last_ts)
    if (
        snap.bid is not None
        and snap.ask is not None
        and snap.quote_ts is not None
        and (state.quote_ts is None or snap.quote_ts > state.quote_ts)
    ):
        state.bid, state.bid_size = snap.bid, snap.bid_size
        state.ask, state.ask_size = snap.ask, snap.ask_size
        state.quote_ts = snap.quote_ts
        newest.append(snap.quote_ts)
    for ts in newest:
        if state.ts is None or ts > state.ts:
            state.ts = ts
    after = (
        state.last, state.bid, state.ask, state.open, state.high, state.low,
        state.volume, state.prev_close,
    )  # fmt: skip
    return after != before


def _newer_trade(state: InstrumentState, snap: Snapshot) -> bool:
    if state.last_trade_ts is not None:
        return snap.last_ts > state.last_trade_ts
    # No trade seen, but a live bar may have set the price (bars-only feeds).
    return state.last is None or state.ts is None or snap.last_ts >= state.ts


def _apply_day(state: InstrumentState, snap: Snapshot) -> None:
    ref = snap.session_ts or snap.last_ts
    if ref is None:
        if state.prev_close is None and snap.prev_close is not None:
            state.prev_close = snap.prev_close
        return
    start, end = day_bounds(state.asset_class, ref)
    seen_nothing = state.open is None and state.last_trade_ts is None
    if (
        state.day_start is None
        or start > state.day_start
        or (seen_nothing and start != state.day_start)
    ):
        # The snapshot's day becomes the state's (a newer day, or a state
        # that only has the wall clock's day: equities at night show the
        # last session, as every quote screen does).
        state.day_start, state.day_end = start, end
        state.open, state.high, state.low = snap.open, snap.high, snap.low
        state.volume = snap.volume if snap.volume is not None else Decimal(0)
        state.daily_from_provider = False
        if snap.prev_close is not None:
            state.prev_close = snap.prev_close
        return
    if start != state.day_start:
        return  # an older day than the one the state is in
    if snap.prev_close is not None:
        state.prev_close = snap.prev_close
    if snap.open is not None:
        state.open = snap.open
    if snap.high is not None and (state.high is None or snap.high > state.high):
        state.high = snap.high
    if snap.low is not None and (state.low is None or snap.low < state.low):
        state.low = snap.low
    if snap.volume is not None and snap.volume > state.volume:
        state.volume = snap.volume


class ColdStart:
    """Snapshots for newly subscribed instruments, off the event loop."""

    def __init__(
        self,
        worker,
        *,
        retry_base: float = 2.0,
        retry_cap: float = 300.0,
        max_retries: int = 2,
    ) -> None:
        self.worker = worker
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_retries = max_retries  # the HTTP client's own, per request
        self.pending: dict[str, float] = {}  # symbol -> monotonic time due
        self.failures: dict[str, int] = {}  # provider -> failures in a row
        self.retry_at: dict[str, float] = {}  # provider -> monotonic
        self.clients: dict[str, Provider | None] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.applied = 0
        self.errors = 0
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=3, thread_name_prefix="stream-snapshots"
        )

    def add(self, symbols) -> None:
        """Queue `symbols` (just subscribed) for a snapshot."""
        now = time.monotonic()
        for symbol in symbols:
            self.pending.setdefault(symbol, now)

    async def step(self) -> bool:
        """Start a fetch for every provider with due symbols and none running."""
        w = self.worker
        now = time.monotonic()
        due: set[str] = set()
        for symbol, at in list(self.pending.items()):
            state = w.states.get(symbol)
            if state is None or not state.provider:  # removed, or no provider
                del self.pending[symbol]
            elif at <= now:
                due.add(state.provider)
        for name in due:
            task = self.tasks.get(name)
            if (task is None or task.done()) and self.retry_at.get(name, 0.0) <= now:
                self.tasks[name] = asyncio.create_task(self._run(name))
        return not w.shutdown

    def _due(self, name: str) -> list[str]:
        now, states = time.monotonic(), self.worker.states
        return [
            s
            for s, at in self.pending.items()
            if at <= now and s in states and states[s].provider == name
        ]

    async def _run(self, name: str) -> None:
        w = self.worker
        try:
            client = self._client(name)
            while client is not None and not w.shutdown:
                batch = self._due(name)[: client.snapshot_batch]
                if not batch:
                    return
                self._map(client, batch)
                for symbol in batch:
                    del self.pending[symbol]
                try:
                    found = await w.loop.run_in_executor(
                        self._pool, client.fetch_snapshots, batch
                    )
                except Exception as exc:  # retried with back-off
                    self._failed(name, batch, exc)
                    return
                if self.failures.pop(name, None):
                    w.problems.recovered(
                        f"snapshots:{name}", "%s: snapshots work again", name
                    )
                self._apply(name, batch, found)
        except asyncio.CancelledError:
            self.close()  # the loop is ending: let the threads finish fast
            raise
        except Exception as exc:  # a bug here must not stop streaming
            w.problems.error(
                f"snapshots-bug:{name}", "%s: applying snapshots failed", name, exc=exc
            )

    def _client(self, name: str) -> Provider | None:
        if name not in self.clients:
            from marketdata.providers.routing import provider_build

            try:
                client = provider_build(
                    name=name, instruments=[], max_retries=self.max_retries
                )
            except Exception as exc:  # a provider without REST options
                logger.warning(
                    "no snapshot client for provider %s: %s", name, cause(exc)
                )
                client = None
            if client is not None and client.snapshot_batch:
                client.http.sleep = self._sleep
            else:
                client = None
                for symbol in [
                    s for s, st in self.worker.states.items() if st.provider == name
                ]:
                    self.pending.pop(symbol, None)
            self.clients[name] = client
        return self.clients[name]

    def _map(self, client: Provider, symbols: list[str]) -> None:
        """The provider symbols streaming uses (instruments held back over a
        plan's budget have no connection: their row's mapping)."""
        from marketdata.providers.routing import symbol_namespace

        w = self.worker
        namespace = symbol_namespace(client.name)
        for symbol in symbols:
            connection = w.routes.get(symbol)
            if connection is not None:
                client.map_symbol(symbol, connection.provider.provider_symbol(symbol))
            else:
                row = w.instrument_rows.get(symbol) or {}
                client.map_symbol(
                    symbol, (row.get("provider_symbols") or {}).get(namespace)
                )

    def _failed(self, name: str, batch: list[str], exc: Exception) -> None:
        self.errors += 1
        failures = self.failures[name] = self.failures.get(name, 0) + 1
        ceiling = min(self.retry_cap, self.retry_base * 2 ** (failures - 1))
        if getattr(exc, "permanent", False):
            ceiling = self.retry_cap
        delay = ceiling * random.uniform(0.5, 1.0)
        at = time.monotonic() + delay
        self.retry_at[name] = at
        for symbol in batch:
            self.pending[symbol] = at
        self.worker.problems.warning(
            f"snapshots:{name}",
            "%s: snapshots failed for %d instrument(s), retry in %.0f s",
            name,
            len(batch),
            delay,
            exc=exc,
        )

    def _apply(self, name: str, batch: list[str], found: dict[str, Snapshot]) -> None:
        w = self.worker
        engine = w.alert_engine
        now = time.time()
        for symbol in batch:
            snap = found.get(symbol)
            state = w.states.get(symbol)
            if snap is None or state is None or state.provider != name:
                continue
            if not snapshot_apply(state, snap):
                continue
            self.applied += 1
            state.received_at = now
            w.publisher.mark(state)
            if engine is not None and state.prev_close is not None:
                try:
                    engine.set_prev_close(symbol, state.prev_close)
                except Exception as exc:  # alerts must not stop quotes
                    w.problems.warning(
                        "alerts-prev-close",
                        "previous close for alerts not set for %s",
                        symbol,
                        exc=exc,
                    )
        missing = [s for s in batch if s not in found]
        logger.info(
            "%s: snapshots for %d instrument(s)%s",
            name,
            len(batch) - len(missing),
            f", none for {', '.join(missing[:5])}" if missing else "",
        )

    def _sleep(self, seconds: float) -> None:
        """The HTTP client's retry sleep, cut short when the worker stops."""
        self._stopping.wait(seconds)

    def close(self) -> None:
        self._stopping.set()
        for client in self.clients.values():
            if client is not None:
                client.http.max_retries = 0
        self._pool.shutdown(wait=False, cancel_futures=True)
