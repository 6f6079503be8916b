"""Failover: which provider of each asset class's list streams now.

Each asset class has an ordered provider list (`marketdata.providers.routing`).
The stream worker's `Router` keeps, per provider, whether it is healthy:

- a provider is *unhealthy* while its connection is not live (connecting,
  backing off, refused) or its health score says so
  (`streaming.monitor.score`: silent while subscribed and open, pings
  unanswered, errors, lag); a provider with no connection yet counts as
  healthy until it is tried;
- the instruments of a provider that has been unhealthy for `switch_after`
  seconds (`STREAM_FAILOVER_AFTER`, 4 s by default, counted from the moment
  it turned unhealthy) move to the next usable provider of their list;
- they move back once the better provider has been healthy for `hold`
  seconds (`STREAM_FAILBACK_HOLD`, 2 min): no flapping;
- a provider that failed `bench_after` times within an hour is *benched*:
  not used for 5 minutes, doubling up to an hour, whatever its health.

`usable(asset_class)` is the list the subscription manager allocates from.
The primary stays connected while failed over (with no symbols when it has
none left), so its recovery is seen.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from django.conf import settings

logger = logging.getLogger(__name__)

BENCH_FIRST = 300.0
BENCH_MAX = 3600.0


@dataclass
class ProviderHealth:
    name: str
    healthy: bool = True
    since: float = field(default_factory=time.time)  # of the current verdict
    reasons: list[str] = field(default_factory=list)
    failures: deque = field(default_factory=lambda: deque(maxlen=50))
    failed_over: bool = False  # its instruments moved away; hold applies
    counted: float | None = None  # `since` of the last failure counted
    benched_until: float = 0.0
    benches: int = 0

    def document(self, now: float) -> dict:
        return {
            "provider": self.name,
            "healthy": self.healthy,
            "failed_over": self.failed_over,
            "for_s": round(now - self.since, 1),
            "reasons": self.reasons,
            "benched_for_s": round(max(0.0, self.benched_until - now), 1),
        }


class Router:
    def __init__(
        self,
        *,
        chains: dict[str, list[str]],
        switch_after: float | None = None,
        hold: float | None = None,
        bench_after: int = 3,
        judge=None,
    ) -> None:
        self.chains = chains
        self.switch_after = (
            settings.STREAM_FAILOVER_AFTER if switch_after is None else switch_after
        )
        self.hold = settings.STREAM_FAILBACK_HOLD if hold is None else hold
        self.bench_after = bench_after
        self.judge = judge  # (connections, now) -> (healthy, reasons)
        self.health: dict[str, ProviderHealth] = {}

    def chain(self, asset_class: str) -> list[str]:
        return self.chains.get(asset_class, [])

    def _health(self, name: str) -> ProviderHealth:
        health = self.health.get(name)
        if health is None:
            health = self.health[name] = ProviderHealth(name)
        return health

    def observe(
        self, name: str, healthy: bool | None, reasons: list[str], now: float
    ) -> bool:
        """Record a provider's verdict (None: no news, e.g. still connecting);
        True when it changed."""
        health = self._health(name)
        if healthy is None or healthy == health.healthy:
            if healthy is not None:
                health.reasons = reasons
            return False
        health.healthy, health.since, health.reasons = healthy, now, reasons
        if healthy:
            logger.info("%s is healthy again", name)
        else:
            logger.warning("%s is unhealthy: %s", name, "; ".join(reasons))
        return True

    def usable(self, asset_class: str, now: float | None = None) -> list[str]:
        """The providers `asset_class` may stream from now, best first. The
        first healthy provider of the list (else its first) is kept when
        nothing is usable: an instrument always has somewhere to wait."""
        now = time.time() if now is None else now
        chain = self.chain(asset_class)
        usable = [name for name in chain if self._usable(name, now)]
        if not usable and chain:
            healthy = [n for n in chain if self._health(n).healthy]
            return healthy[:1] or chain[:1]
        return usable

    def _usable(self, name: str, now: float) -> bool:
        health = self._health(name)
        if health.benched_until > now:
            return False
        if not health.healthy:
            # A reconnect usually heals within `switch_after`: keep it.
            if now - health.since < self.switch_after:
                return True
            if health.counted != health.since:  # each failure counts once
                health.counted = health.since
                self._failed_over(health, now)
            return False
        if health.failed_over:
            # Back from a failover: healthy for the hold period first.
            if now - health.since < self.hold:
                return False
            health.failed_over = False
        return True

    def _failed_over(self, health: ProviderHealth, now: float) -> None:
        health.failed_over = True
        health.failures.append(now)
        recent = [t for t in health.failures if now - t < 3600]
        if len(recent) >= self.bench_after:
            delay = min(BENCH_FIRST * 2**health.benches, BENCH_MAX)
            health.benched_until = now + delay
            health.benches += 1
            health.failures.clear()
            logger.warning(
                "%s failed %d times within an hour: benched for %.0f s",
                health.name,
                len(recent),
                delay,
            )

    def documents(self, now: float) -> list[dict]:
        return [h.document(now) for h in self.health.values()]
