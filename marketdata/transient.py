"""Which failures are transient, and how long to wait before trying again.

Transient: the database or Redis unreachable or dropping the connection, a
provider answering 5xx or 429 (`ProviderError(permanent=False)`, whose
`retry_after` is honoured) and network errors. They say nothing about the
work itself, so the work is retried until it succeeds (`marketdata.reclaim`
describes how). Everything else (a bad symbol, refused credentials, a bug)
is permanent: retrying cannot help.
"""

from __future__ import annotations

import random

import dramatiq
import psycopg
import redis.exceptions
import requests
from django.conf import settings
from django.db import InterfaceError, OperationalError

from marketdata.providers.base import ProviderError

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    dramatiq.errors.BrokerConnectionError,
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
)
MIN_BACKOFF = 2.0  # seconds before the first retry
MAX_BACKOFF = 60.0


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ProviderError):
        return not exc.permanent
    return isinstance(exc, TRANSIENT_ERRORS)


def is_database_error(exc: BaseException) -> bool:
    return isinstance(
        exc,
        (
            OperationalError,
            InterfaceError,
            psycopg.OperationalError,
            psycopg.InterfaceError,
        ),
    )


def max_backoff() -> float:
    """The longest wait between two tries: a minute, and never more than half
    of HISTORY_STALE_SECONDS, so that work being retried always looks alive
    to the reclaimer (which re-sends what nobody touched for that long)."""
    return max(MIN_BACKOFF, min(MAX_BACKOFF, settings.HISTORY_STALE_SECONDS / 2))


def retry_delay(*, tries: int, retry_after: float | None = None) -> float:
    """Seconds to wait before try number `tries + 1`: exponential with
    jitter, at least the provider's Retry-After."""
    base = min(max_backoff(), MIN_BACKOFF * 2 ** max(0, tries - 1))
    delay = base * random.uniform(0.75, 1.0)
    if retry_after:
        delay = max(delay, min(retry_after, max_backoff()))
    return delay


def retry_after_of(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) and value > 0 else None
