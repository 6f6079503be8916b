"""Freshness of one instrument's data, as the snapshot shows it.

* `over_limit` / `no_provider` – in use but not subscribed: over the
              provider plan's symbol budget, or no configured provider
              streams it (`streaming.budget`);
* `halted`  – the provider reported a trading halt (until it reports a resume);
* `closed`  – the market calendar says the instrument's market is closed now;
* `stale`   – the market is open but nothing arrived for `stale_after` seconds
              (counted from the last event, or from the subscription when none
              came yet): the feed may be broken;
* `live`    – otherwise.

This lets the dashboard and the alert engine tell a quiet market from a broken
feed.
"""

from __future__ import annotations

LIVE, STALE, CLOSED, HALTED = "live", "stale", "closed", "halted"
# What a dashboard row says for each state that is not its own name.
LABELS = {
    "over_limit": "unsubscribed: over plan limit",
    "no_provider": "unsubscribed: no provider",
}


def freshness_of(
    *,
    halted: bool,
    market_open: bool,
    last_event_at: float | None,
    subscribed_at: float | None,
    now: float,
    stale_after: float,
    unsubscribed: str = "",
) -> str:
    if unsubscribed:
        return unsubscribed
    if halted:
        return HALTED
    if not market_open:
        return CLOSED
    reference = last_event_at if last_event_at is not None else subscribed_at
    if reference is not None and now - reference > stale_after:
        return STALE
    return LIVE
