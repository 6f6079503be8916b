"""Response times and rate-limit use of provider REST calls, per provider.

`HttpClient.get_json` calls `rest_request_record` after every request with
its duration, HTTP status (0: no answer) and the seconds its rate limiter
made it wait. Figures gather in memory and go to Redis at most every
`FLUSH_EVERY` seconds from whichever thread made the request (best effort:
Redis away, they wait for the next flush), so every process (web, Dramatiq
workers, stream workers) adds to the same totals:

- hash `<namespace>:rest:provider:<provider>`: requests, errors (no answer
  or >= 400), rate_limited (418/429), seconds (sum of durations), throttled_s (time spent
  waiting for the shared rate limiter);
- list `…:rest:provider:<provider>:recent`: the last 256 durations (ms);
- `…:rest:provider:<provider>:m:<epoch minute>`: requests in that minute.

`rest_stats_get()` reads them back for the status page and `/metrics`:
average, p50 and p95 response time, and `rate_limit_use`: requests in the
last full minute (or the current one, when busier) over the provider's
per-minute limit (`settings.PROVIDER_RATE_LIMITS`).
"""

from __future__ import annotations

import threading
import time

FLUSH_EVERY = 2.0
RECENT = 256

_lock = threading.Lock()
_pending: dict[str, dict] = {}
_flushed_at = 0.0


def _providers_key() -> str:
    from core.redis import key

    return key("rest", "providers")


def _key(provider: str) -> str:
    from core.redis import key

    return key("rest", "provider", provider)


def rest_request_record(
    *, provider: str, seconds: float, status: int, throttled: float = 0.0
) -> None:
    global _flushed_at
    with _lock:
        p = _pending.setdefault(
            provider, {"durations": [], "errors": 0, "limited": 0, "throttled": 0.0}
        )
        p["durations"].append((time.time(), seconds))
        p["errors"] += 1 if status == 0 or status >= 400 else 0
        p["limited"] += 1 if status in (418, 429) else 0
        p["throttled"] += throttled
        due = time.monotonic() - _flushed_at >= FLUSH_EVERY
        if due:
            _flushed_at = time.monotonic()
    if due:
        rest_stats_flush()


def rest_stats_flush() -> None:
    """Move the figures gathered in memory to Redis (kept when it fails)."""
    from core.redis import REDIS_ERRORS, redis_client

    with _lock:
        batch = dict(_pending)
        _pending.clear()
    if not batch:
        return
    try:
        pipe = redis_client().pipeline(transaction=False)
        for provider, p in batch.items():
            key = _key(provider)
            pipe.sadd(_providers_key(), provider)
            pipe.hincrby(key, "requests", len(p["durations"]))
            pipe.hincrby(key, "errors", p["errors"])
            pipe.hincrby(key, "rate_limited", p["limited"])
            pipe.hincrbyfloat(key, "seconds", sum(s for _, s in p["durations"]))
            pipe.hincrbyfloat(key, "throttled_s", p["throttled"])
            pipe.lpush(
                f"{key}:recent", *[round(s * 1000, 2) for _, s in p["durations"]]
            )
            pipe.ltrim(f"{key}:recent", 0, RECENT - 1)
            minutes: dict[int, int] = {}
            for at, _ in p["durations"]:
                minutes[int(at // 60)] = minutes.get(int(at // 60), 0) + 1
            for minute, count in minutes.items():
                pipe.incrby(f"{key}:m:{minute}", count)
                pipe.expire(f"{key}:m:{minute}", 180)
        pipe.execute()
    except REDIS_ERRORS:
        global _flushed_at
        with _lock:  # put back for a later flush (figures only: no log)
            _flushed_at = time.monotonic() + 30.0  # no 2 s timeout per request
            for provider, p in batch.items():
                kept = _pending.setdefault(
                    provider,
                    {"durations": [], "errors": 0, "limited": 0, "throttled": 0.0},
                )
                kept["durations"][:0] = p["durations"][-1000:]
                for name in ("errors", "limited", "throttled"):
                    kept[name] += p[name]


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def rest_stats_get() -> list[dict]:
    """Per provider: requests, errors, rate_limited, avg_ms, p50_ms, p95_ms,
    throttled_s, per_minute, limit, rate_limit_use (0..1+)."""
    from django.conf import settings

    from core.redis import redis_client

    client = redis_client()
    providers = sorted(p.decode() for p in client.smembers(_providers_key()))
    minute = int(time.time() // 60)
    limits = settings.PROVIDER_RATE_LIMITS
    found = []
    for provider in providers:
        key = _key(provider)
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.lrange(f"{key}:recent", 0, RECENT - 1)
        pipe.mget(f"{key}:m:{minute - 1}", f"{key}:m:{minute}")
        totals, recent, (previous, current) = pipe.execute()
        totals = {k.decode(): float(v) for k, v in totals.items()}
        durations = [float(v) for v in recent]
        requests = int(totals.get("requests", 0))
        per_minute = max(int(previous or 0), int(current or 0))
        limit = int(limits.get(provider, 200))
        found.append(
            {
                "provider": provider,
                "requests": requests,
                "errors": int(totals.get("errors", 0)),
                "rate_limited": int(totals.get("rate_limited", 0)),
                "avg_ms": round(1000 * totals.get("seconds", 0) / requests, 1)
                if requests
                else None,
                "p50_ms": _percentile(durations, 0.5),
                "p95_ms": _percentile(durations, 0.95),
                "throttled_s": round(totals.get("throttled_s", 0), 2),
                "per_minute": per_minute,
                "limit": limit,
                "rate_limit_use": round(per_minute / limit, 3) if limit else None,
            }
        )
    return found
