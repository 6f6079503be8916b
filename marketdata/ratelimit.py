"""A request rate limit shared by every worker process through Redis.

Generic cell rate algorithm: Redis keeps, per provider, the theoretical time
at which the next request may go out; each request advances it by 60/limit
seconds. A small burst is allowed so that pages already in flight are not
serialized needlessly. Redis's own clock is used, so workers on several
machines agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from core.redis import key, redis_client

_GCRA = """
local interval = tonumber(ARGV[1])
local allowance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - allowance
if wait > 0 then return wait end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1000)
return 0
"""


class RedisRateLimiter:
    """Callable handed to a provider adapter as its `rate_limiter`: blocks
    until one more request toward `provider` fits in the shared budget."""

    def __init__(
        self,
        *,
        provider: str,
        per_minute: int | None = None,
        burst: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        limits = settings.PROVIDER_RATE_LIMITS
        self.provider = provider
        self.per_minute = max(1, int(per_minute or limits.get(provider, 200)))
        self.burst = max(1, burst if burst is not None else self.per_minute // 20)
        self.key = key("ratelimit", provider)
        self._sleep = sleep
        self._script = redis_client().register_script(_GCRA)
        self.waited = 0.0

    @property
    def interval_us(self) -> int:
        return int(60_000_000 / self.per_minute)

    def try_acquire(self) -> float:
        """Take one request slot if available; else return seconds to wait."""
        interval = self.interval_us
        wait_us = int(
            self._script(keys=[self.key], args=[interval, interval * (self.burst - 1)])
        )
        return wait_us / 1_000_000

    def __call__(self) -> None:
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return
            self.waited += wait
            self._sleep(wait)


def rate_limiter_for(provider: str) -> RedisRateLimiter:
    return RedisRateLimiter(provider=provider)
