"""Plan budgets: how many instruments a provider connection may carry, and
which instruments get the places.

**The budget** of a connection is the provider plan's symbol limit
(`STREAM_SYMBOL_LIMITS`, per provider; 0 = none): Alpaca's free (IEX) plan 30
symbols on the stock stream (its crypto stream has no symbol cap), SIP plans
none, Finnhub's free plan 50, Binance 1,024 streams per connection, i.e.
1,024 // 3 symbols (trade, 1-minute kline and book ticker per symbol). A
provider that refuses subscriptions for its plan teaches the connection a
lower limit (`LearnedLimit`), which then wins.

**The priority** that fills a budget, highest first:

1. instruments in someone's positions;
2. instruments with an active alert rule;
3. watchlist instruments, by how many users hold them (more first), then by
   how recently anyone viewed them (the dashboard or the instrument page);
4. then by symbol, so the choice is stable.

Instruments that do not fit are *over budget*: the worker keeps their rows
(snapshots still give them a price) and shows them as
`unsubscribed: over plan limit`. When a place frees up (an instrument
removed), the next one in priority order is subscribed on the next
subscription step (every second).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

# Why an instrument in use is not subscribed (its freshness shows it).
OVER_LIMIT = "over_limit"
NO_PROVIDER = "no_provider"


def priority_key(row: dict) -> tuple:
    """Sort key of an instrument row from `selectors.instruments_to_stream`."""
    viewed = row.get("viewed_at")
    return (
        not row.get("position"),
        not row.get("alert"),
        -(row.get("holders") or 0),
        -(viewed.timestamp() if viewed is not None else 0.0),
        row["symbol"],
    )


def ranked(rows: Iterable[dict]) -> list[dict]:
    return sorted(rows, key=priority_key)


def plan_limit(name: str, asset_class: str) -> int | None:
    """Symbols one connection of provider `name` may carry for `asset_class`
    on the configured plan (None: no limit)."""
    from marketdata.providers import provider_class

    limit = int(settings.STREAM_SYMBOL_LIMITS.get(name) or 0)
    if limit <= 0:
        return None
    cls = provider_class(name)
    limited = getattr(cls, "plan_limited_classes", None)
    if limited is not None and asset_class not in limited:
        return None
    return max(0, limit // max(1, getattr(cls, "streams_per_symbol", 1)))


@dataclass
class LearnedLimit:
    """What a provider's plan-limit refusals taught about its real limit.

    `good` symbols were accepted together, `bad` were refused together (None:
    never refused). `limit()` probes between the two by halving, so a wrong
    configured budget converges on the provider's real one in a few
    subscription steps, and stays there."""

    good: int = 0
    bad: int | None = None

    def accepted(self, count: int) -> None:
        self.good = max(self.good, count)
        if self.bad is not None and self.bad <= self.good:
            self.bad = self.good + 1

    def refused(self, attempted: int) -> None:
        self.bad = attempted if self.bad is None else min(self.bad, attempted)
        if self.good >= self.bad:
            self.good = max(0, self.bad - 1)

    def limit(self) -> int | None:
        if self.bad is None:
            return None
        if self.bad - self.good <= 1:
            return self.good
        return (self.good + self.bad) // 2


@dataclass
class Allocation:
    """One planning round: symbol -> provider for those that stream, and the
    symbols left over per reason."""

    streaming: dict[str, str] = field(default_factory=dict)
    over_budget: dict[str, str] = field(default_factory=dict)  # symbol -> provider
    no_provider: set[str] = field(default_factory=set)

    def counts(self, rejected: int) -> dict[str, int]:
        return {
            "streaming": len(self.streaming),
            "over_budget": len(self.over_budget),
            "rejected": rejected,
            "no_provider": len(self.no_provider),
        }


def allocate(
    rows: list[dict],
    *,
    route: dict[str, list[str]],
    limit_of,
) -> Allocation:
    """Give each instrument (in priority order) the first provider of its
    route with room left. `route[asset_class]` lists the usable providers,
    best first; `limit_of(provider, asset_class)` is `(key, limit)`: the
    budget's key (a connection: Alpaca's equities and ETFs share one) and its
    limit (None = no limit). An instrument whose providers are all full is
    over budget on the first of them."""
    allocation = Allocation()
    used: dict = {}
    for row in ranked(rows):
        symbol, asset_class = row["symbol"], row["asset_class"]
        providers = route.get(asset_class) or []
        if not providers:
            allocation.no_provider.add(symbol)
            continue
        for name in providers:
            key, limit = limit_of(name, asset_class)
            if limit is None or used.get(key, 0) < limit:
                used[key] = used.get(key, 0) + 1
                allocation.streaming[symbol] = name
                break
        else:
            allocation.over_budget[symbol] = providers[0]
    return allocation
