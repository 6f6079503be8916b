"""REST plumbing shared by the provider adapters.

One `requests.Session` per provider instance, a rate-limiter hook called before
every request, retries with exponential back-off and jitter on 429/418 and 5xx
(honouring `Retry-After` in seconds) and on connection errors, and typed errors
(`marketdata.providers.base`) for everything else. Secrets travel in headers or
query parameters and are never put into exception messages or logs: messages
name the path only.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import requests

from marketdata.providers.base import (
    AuthenticationError,
    InvalidRequestError,
    ProviderError,
    RateLimitedError,
)
from marketdata.providers.rest_stats import rest_request_record

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})

#: classify(status, body, message) -> an error to raise, or None for the default mapping
ErrorClassifier = Callable[[int, Any, str], ProviderError | None]


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # HTTP-date form: not used by these providers
    return max(0.0, seconds)


def _error_message(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        for key in ("message", "msg", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):  # {"error": {"code":..., "msg":...}}
                inner = value.get("msg") or value.get("message")
                if isinstance(inner, str) and inner:
                    return inner
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return fallback


class HttpClient:
    """GET JSON from one provider's REST API with retries and typed errors."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        rate_limiter: Callable[[], None] | None = None,
        classify: ErrorClassifier | None = None,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update(dict(headers or {}))
        self.auth_params = dict(params or {})
        self.rate_limiter = rate_limiter
        self.classify = classify
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.sleep = sleep
        self.requests_made = 0
        self.retries_made = 0

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * random.uniform(0.5, 1.0) + random.uniform(0, self.backoff / 2)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `base_url + path` and return the decoded JSON body."""
        url = self.base_url + path
        query = {**dict(params or {}), **self.auth_params}
        attempt = 0
        while True:
            waited = time.monotonic()
            if self.rate_limiter is not None:
                self.rate_limiter()
            self.requests_made += 1
            started = time.monotonic()
            try:
                response = self.session.get(url, params=query, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._measured(started, waited, 0)
                if attempt >= self.max_retries:
                    raise ProviderError(
                        f"{self.provider}: GET {path} failed after {attempt + 1} "
                        f"attempts: {type(exc).__name__}",
                        permanent=False,
                    ) from None
                delay = self._delay(attempt, None)
                logger.warning(
                    "%s GET %s: %s, retry %d in %.2fs",
                    self.provider,
                    path,
                    type(exc).__name__,
                    attempt + 1,
                    delay,
                )
                self.retries_made += 1
                self.sleep(delay)
                attempt += 1
                continue

            status = response.status_code
            self._measured(started, waited, status)
            if 200 <= status < 300:
                try:
                    return orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    raise ProviderError(
                        f"{self.provider}: GET {path} returned a body that is not JSON",
                        permanent=False,
                        status=status,
                    ) from None

            body = self._body(response)
            message = _error_message(body, response.reason or f"HTTP {status}")
            if status in RETRY_STATUSES:
                retry_after = _retry_after_seconds(response)
                too_long = (
                    retry_after is not None and retry_after > self.max_retry_after
                )
                if attempt >= self.max_retries or too_long:
                    if status in (418, 429):
                        raise RateLimitedError(
                            f"{self.provider}: rate limited on {path} ({status}): {message}",
                            retry_after=retry_after,
                            status=status,
                        )
                    raise ProviderError(
                        f"{self.provider}: server error {status} on {path} after "
                        f"{attempt + 1} attempts: {message}",
                        permanent=False,
                        status=status,
                    )
                delay = self._delay(attempt, retry_after)
                logger.warning(
                    "%s GET %s: HTTP %d, retry %d in %.2fs",
                    self.provider,
                    path,
                    status,
                    attempt + 1,
                    delay,
                )
                self.retries_made += 1
                self.sleep(delay)
                attempt += 1
                continue

            raise self._error(status, body, message, path)

    def _measured(self, started: float, waited: float, status: int) -> None:
        """Response time and rate-limiter wait, for the status page."""
        rest_request_record(
            provider=self.provider,
            seconds=time.monotonic() - started,
            status=status,
            throttled=started - waited,
        )

    @staticmethod
    def _body(response: requests.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return response.text

    def _error(self, status: int, body: Any, message: str, path: str) -> ProviderError:
        if self.classify is not None:
            error = self.classify(status, body, message)
            if error is not None:
                return error
        text = f"{self.provider}: {message} (HTTP {status} on {path})"
        if status in (401, 403):
            return AuthenticationError(text, status=status)
        if status in (400, 404, 422):
            return InvalidRequestError(text, status=status)
        return ProviderError(text, permanent=400 <= status < 500, status=status)

    def close(self) -> None:
        self.session.close()
