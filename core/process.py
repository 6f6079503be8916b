"""CPU and memory of this process, for the status page and `/metrics`.

`process_usage()` reads `/proc/self` (resident memory, threads) and
`resource.getrusage` (CPU seconds); `cpu_percent` is the share of one core
used since the previous call in this process. Stream workers put it in their
health document (`streaming.health`); the web process reports its own per
request; Dramatiq workers run `process_report` from the reclaimer
(RECLAIM_SERVICES), which stores it in the Redis hash `tapeline:processes`,
read back by `processes_get()` (entries older than three reclaim periods are
left out and deleted).
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import threading
import time

import orjson

_previous: dict[str, float] = {}
_lock = threading.Lock()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return usage * (1 if sys.platform == "darwin" else 1024)


def process_usage(*, role: str = "") -> dict:
    """{"role", "host", "pid", "cpu_s", "cpu_percent", "rss_mb", "threads"}."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    now = time.monotonic()
    with _lock:
        then, cpu_then = _previous.get("at"), _previous.get("cpu")
        _previous.update(at=now, cpu=cpu)
    percent = None
    if then is not None and now - then > 0.05:
        percent = round(100 * (cpu - cpu_then) / (now - then), 1)
    return {
        "role": role,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cpu_s": round(cpu, 2),
        "cpu_percent": percent,
        "rss_mb": round(_rss_bytes() / 2**20, 1),
        "threads": threading.active_count(),
        "reported_at": time.time(),
    }


def process_report(role: str = "dramatiq") -> None:
    """Store this process's usage in Redis (a reclaim service: returns None,
    so the reclaimer logs nothing)."""
    from core.redis import key, redis_client

    usage = process_usage(role=role)
    field = f"{role}:{usage['host']}:{usage['pid']}"
    redis_client().hset(key("processes"), field, orjson.dumps(usage))


def processes_get(*, max_age: float | None = None) -> list[dict]:
    """Processes that reported within `max_age` s (default: three reclaim
    periods); older entries are deleted."""
    from django.conf import settings

    from core.redis import key, redis_client

    if max_age is None:
        max_age = 3 * max(10.0, float(settings.HISTORY_RECLAIM_EVERY))
    client = redis_client()
    now, found, gone = time.time(), [], []
    for field, raw in client.hgetall(key("processes")).items():
        try:
            usage = orjson.loads(raw)
        except orjson.JSONDecodeError:
            gone.append(field)
            continue
        if now - float(usage.get("reported_at") or 0) > max_age:
            gone.append(field)
        else:
            found.append(usage)
    if gone:
        client.hdel(key("processes"), *gone)
    return sorted(found, key=lambda u: (u.get("role", ""), u.get("pid", 0)))
