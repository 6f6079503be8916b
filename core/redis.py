"""One shared Redis client per process for snapshots, health and rate limits,
the process's record of whether that Redis answers (`redis_outage`), and
`key()`, which names every key this project keeps there."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from urllib.parse import urlsplit

import redis
from django.conf import settings

from core.outage import Outage
from core.services_check import mask_url

# What a failed Redis call raises: redis-py's own errors, and OSError from the
# asyncio client's socket layer.
REDIS_ERRORS = (redis.RedisError, OSError)

logger = logging.getLogger(__name__)

_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()


def key(*parts: str) -> str:
    """The Redis key `<namespace>:<part>:<part>…` of this installation
    (`TAPELINE_NAMESPACE`, see `core.namespace`). Read at each call, so a
    test may switch installations with `override_settings`."""
    return ":".join((settings.TAPELINE_NAMESPACE, *parts))


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    # A read timeout too: a hung (not dead) Redis must not hold a page or the
    # stream worker's loop forever.
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=2,
        socket_timeout=2,
        health_check_interval=30,
    )


def redis_outage(url: str | None = None) -> Outage:
    """The outage tracker of the Redis server at `url` (default `REDIS_URL`),
    shared by everything in this process that talks to that server."""
    url = url or settings.REDIS_URL
    parts = urlsplit(url)
    key = parts.netloc or url  # the server, whatever the database number
    outage = _outages.get(key)
    if outage is None:
        with _outages_lock:
            outage = _outages.get(key)
            if outage is None:
                outage = _outages[key] = Outage(
                    f"Redis at {mask_url(url)}", logger=logger
                )
    return outage


def redis_reachable() -> bool:
    """Whether `REDIS_URL` answers, as far as this process knows. While it is
    known to be down, probed (PING) at most once a second."""
    outage = redis_outage()
    if outage.down and outage.should_try():
        try:
            redis_client().ping()
        except REDIS_ERRORS as exc:
            outage.failed(exc, doing="PING")
        else:
            outage.succeeded()
    return not outage.down
