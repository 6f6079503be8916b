"""Latest state per instrument, kept in Redis by the stream worker.

A page render or a new WebSocket reads these to show state immediately. One
JSON document per instrument under `snap:<symbol>`:

    {
      "symbol": "AAPL",
      "seq": 1234,                 # per-instrument sequence, +1 per published update
      "ts": "2024-05-01T14:30:01.123456+00:00",   # event time of the latest change
      "received_at": 1714573801.130,              # worker receive time (epoch s)
      "pending_since": 1714573801.030,            # receive time of the oldest
                                                  # change in this update,
      "normalized_at": 1714573801.031,            # when the worker applied it,
      "due_at": 1714573801.130,                   # when the rate allowed it,
      "published_at": 1714573801.131,             # worker send time (epoch s)
      "provider": "alpaca",
      "last": "189.23", "last_size": "100",
      "bid": "189.22", "bid_size": "2", "ask": "189.24", "ask_size": "3",
      "open": "187.10", "high": "190.00", "low": "186.95",   # session so far
      "volume": "1234567",                                   # session so far
      "prev_close": "186.50",
      "change": "2.73", "change_pct": "1.4638",
      "freshness": "live",          # live | stale | closed | halted
      "halted": false,              # provider trading status (halt / resume)
      "minute": {"ts": "...", "open": "...", "high": "...", "low": "...",
                 "close": "...", "volume": "..."}          # forming 1-minute bar
    }

Prices and sizes are strings so no precision is lost on the way to a browser;
absent values are null. Written by the stream worker (`streaming.publisher`)
right before each channel-layer send (in the same Redis call when the channel
layer is this Redis). Channel-layer updates (`market.update` on the
instrument's group, see `core.groups.symbol_group`) carry the same document.

Readers that must not fail when Redis is away (pages, the WebSocket) use
`snapshots_get_safe`, which answers None instead (and, while Redis is known to
be down, does not even try more than once a second).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import orjson

from core.redis import REDIS_ERRORS, key, redis_client, redis_outage


def snapshot_key(symbol: str) -> str:
    return key("snap", symbol)


def snapshots_get(*, symbols: Iterable[str]) -> dict[str, dict]:
    """Snapshots for `symbols` that exist, by symbol (one round trip)."""
    symbols = list(symbols)
    if not symbols:
        return {}
    raw = redis_client().mget([snapshot_key(s) for s in symbols])
    return {s: orjson.loads(v) for s, v in zip(symbols, raw, strict=True) if v}


def snapshots_get_safe(*, symbols: Iterable[str]) -> dict[str, dict] | None:
    """`snapshots_get`, or None when Redis does not answer."""
    symbols = list(symbols)
    if not symbols:
        return {}
    outage = redis_outage()
    if not outage.should_try():
        outage.skipped("snapshot reads")
        return None
    try:
        snapshots = snapshots_get(symbols=symbols)
    except REDIS_ERRORS as exc:
        outage.failed(exc, doing="reading snapshots")
        return None
    outage.succeeded()
    return snapshots


def snapshots_encoded(
    snapshots: Iterable[dict], key_of: Callable[[str], str] = snapshot_key
) -> dict[str, bytes]:
    """The Redis keys and values that store whole snapshot documents
    (`key_of`: `snapshot_key`, or a cache of it)."""
    dumps = orjson.dumps
    return {key_of(s["symbol"]): dumps(s) for s in snapshots}


def snapshots_put(*, snapshots: Iterable[dict]) -> None:
    """Store whole snapshot documents (one MSET: one command to encode and
    one reply to read, however many instruments)."""
    mapping = snapshots_encoded(snapshots)
    if mapping:
        redis_client().mset(mapping)
