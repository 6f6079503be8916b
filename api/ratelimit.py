"""Per-token request budget: a fixed-window counter in Redis, shared by every
web process (`API_RATE_LIMIT` requests per `API_RATE_WINDOW` seconds).

Keys: `<namespace>:api:rate:<token id>:<window number>`, expiring with their
window. When Redis does not answer, requests are let through (one log line
when the outage starts, one when it ends; while it is known down, one probe
a second): a rate limit is not worth an API that is down with Redis.
"""

from __future__ import annotations

import math
import time

from django.conf import settings

from core.redis import REDIS_ERRORS, key, redis_client, redis_outage


def rate_limit_hit(*, token_id: int, now: float | None = None) -> int | None:
    """Count one request of token `token_id`; None while within its budget,
    else the seconds until the window ends (the `Retry-After`)."""
    limit = settings.API_RATE_LIMIT
    window = settings.API_RATE_WINDOW
    if limit <= 0:
        return None
    now = time.time() if now is None else now
    number = int(now // window)
    name = key("api", "rate", str(token_id), str(number))
    outage = redis_outage()
    if not outage.should_try():
        # Known down: one probe a second, not a timeout on every request.
        outage.skipped("API rate counts")
        return None
    try:
        pipe = redis_client().pipeline()
        pipe.incr(name)
        pipe.expire(name, window + 1)
        count, _ = pipe.execute()
    except REDIS_ERRORS as exc:
        outage.failed(exc, doing="counting an API request")
        return None
    outage.succeeded()
    if int(count) <= limit:
        return None
    return max(1, math.ceil((number + 1) * window - now))
