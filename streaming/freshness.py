"""Freshness of one instrument's data, as the snapshot shows it.

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


def freshness_of(
    *,
    halted: bool,
    market_open: bool,
    last_event_at: float | None,
    subscribed_at: float | None,
    now: float,
    stale_after: float,
) -> str:
    if halted:
        return HALTED
    if not market_open:
        return CLOSED
    reference = last_event_at if last_event_at is not None else subscribed_at
    if reference is not None and now - reference > stale_after:
        return STALE
    return LIVE
