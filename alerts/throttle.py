"""At most ALERT_CHANNEL_CONCURRENCY deliveries in flight per channel, across
every worker process, so a slow or hanging endpoint occupies a few worker
threads at most and the other channels' deliveries keep flowing.

Slots are members of a Redis sorted set per channel, scored with their
expiry (a lease: a killed worker's slot frees itself). A delivery that finds
no free slot is put back as a delayed message without touching its row (no
attempt is counted). With Redis away there is no limit rather than no
delivery (the enqueue would fail anyway; the reclaimer sends it later).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from core.redis import REDIS_ERRORS, key, redis_client

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


def slots_key(channel_id: int) -> str:
    return key("alerts", "inflight", str(channel_id))


@contextmanager
def channel_slot(*, channel_id: int | None, lease: float) -> Iterator[bool]:
    """Yields whether the delivery may go now (email is not limited)."""
    limit = settings.ALERT_CHANNEL_CONCURRENCY
    if channel_id is None or limit <= 0:
        yield True
        return
    token = uuid.uuid4().hex
    name = slots_key(channel_id)
    now = time.time()
    try:
        held = bool(
            redis_client().eval(
                _ACQUIRE, 1, name, now, now + lease, limit, token, int(lease * 1000)
            )
        )
    except REDIS_ERRORS:
        yield True
        return
    try:
        yield held
    finally:
        if held:
            try:
                redis_client().zrem(name, token)
            except REDIS_ERRORS:
                pass  # the lease frees it
