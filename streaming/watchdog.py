"""The stream worker's watchdog: instrument freshness and connection health.

`refresh` recomputes one instrument's freshness (`streaming.freshness`) and
publishes a change; `step_freshness` does it for every instrument each second.
`step_watchdog` reconnects connections that are stuck authenticating or silent
while a market they serve is open, pings the others, and tells the worker to
stop (exit code 2) when every started connection failed to authenticate.

"Open" is judged on the worker's clock (`worker.now()`: the feed's clock when
a simulated one runs ahead of the wall clock) and, for equities streamed by a
provider that serves pre- and post-market (`serves_extended_hours`), on the
extended session (04:00-20:00 New York): those rows are live then, and stale
when silent, like the gap ledger's and the sweep's idea of expected minutes.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from marketdata import calendar
from marketdata.providers import serves_extended_hours
from streaming.connection import State
from streaming.freshness import freshness_of
from streaming.state import InstrumentState

logger = logging.getLogger(__name__)


@lru_cache(maxsize=32)
def _extended(provider: str | None) -> bool:
    return serves_extended_hours(provider)


def market_open(asset_class: str, provider: str | None, at) -> bool:
    """Whether `asset_class` trades at `at` on what `provider` streams."""
    return calendar.is_open(asset_class, at, extended=_extended(provider))


def market_open_at(state: InstrumentState, at) -> bool:
    return market_open(state.asset_class, state.provider, at)


class Watchdog:
    def __init__(self, worker) -> None:
        self.worker = worker
        self._last_ping = time.monotonic()

    def refresh(self, state: InstrumentState, now: float, market_open=None) -> None:
        """Recompute one instrument's freshness; publish and tell the alert
        engine when it changed."""
        w = self.worker
        if market_open is None:
            market_open = market_open_at(state, w.now(now))
        freshness = freshness_of(
            halted=state.halted,
            market_open=market_open,
            last_event_at=state.last_event_at,
            subscribed_at=state.subscribed_at,
            now=now,
            stale_after=w.options.stale_after,
            unsubscribed=state.unsubscribed,
        )
        if freshness != state.freshness:
            state.freshness = freshness
            w.publisher.mark(state)
            w.alert_bridge.on_freshness(state.symbol, freshness)

    def step_freshness(self) -> None:
        now = time.time()
        at = self.worker.now()
        open_by: dict[tuple[str, str], bool] = {}
        for state in self.worker.states.values():
            key = (state.asset_class, state.provider)
            market_open = open_by.get(key)
            if market_open is None:
                market_open = open_by[key] = market_open_at(state, at)
            self.refresh(state, now, market_open)

    def step_watchdog(self) -> bool:
        w = self.worker
        """Reconnect silent or stuck connections; stop when none can run."""
        now = time.time()
        o = w.options
        ping = time.monotonic() - self._last_ping >= o.ping_every
        if ping:
            self._last_ping = time.monotonic()
        at = w.now()
        any_open_market = {
            key: market_open(*key, at)
            for key in {(s.asset_class, s.provider) for s in w.states.values()}
        }
        for connection in w.connections.values():
            if connection.state == State.AUTHENTICATING:
                if now - connection.state_since > o.auth_timeout:
                    self._reconnect(
                        connection,
                        f"no authentication answer within {o.auth_timeout:.0f}s",
                        now,
                    )
            elif connection.state == State.LIVE:
                silent = connection.unanswered_ping_for(now)
                if silent is not None:
                    self._reconnect(
                        connection, f"no answer to a ping for {silent:.0f}s", now
                    )
                    continue
                markets_open = any(
                    any_open_market.get(
                        (w.states[s].asset_class, w.states[s].provider), False
                    )
                    for s in list(connection.subscribed)
                    if s in w.states
                )
                last = connection.stats.last_event_at or connection.authenticated_at
                if (
                    markets_open
                    and connection.subscribed
                    and last is not None
                    and now - max(last, connection.authenticated_at or 0)
                    > o.feed_stale_after
                ):
                    self._reconnect(
                        connection,
                        f"no market data for {o.feed_stale_after:.0f}s while the market is open",
                        now,
                    )
                elif ping:
                    connection.ping()
        started = [c for c in w.connections.values() if c.started]
        if started and all(c.state == State.AUTH_FAILED for c in started):
            logger.error(
                "stream worker %s: every provider connection failed to authenticate; exiting",
                w.id,
            )
            w.exit_code = 2
            return False
        return True

    def _reconnect(self, connection, reason: str, now: float) -> None:
        """Drop a connection found dead; failover hears it at once (the
        reconnect that follows is no proof of health)."""
        self.worker.subscriptions.router.observe(
            connection.provider_name, False, [f"{connection.key}: {reason}"], now
        )
        connection.force_reconnect(reason)
