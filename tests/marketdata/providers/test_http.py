"""The shared REST client: retries, typed errors, and secrets kept out of
messages and logs."""

from __future__ import annotations

import logging
import socket

import pytest

from marketdata.providers.base import (
    AuthenticationError,
    InvalidRequestError,
    ProviderError,
    RateLimitedError,
)
from marketdata.providers.http import HttpClient
from tests.marketdata.providers.loopback import LoopbackServer

SECRET = "very-secret-key-123"


def client(url: str, **kwargs) -> HttpClient:
    kwargs.setdefault("backoff", 0.001)
    slept: list[float] = []
    c = HttpClient(
        provider="test",
        base_url=url,
        headers={"X-Key": SECRET},
        sleep=slept.append,
        **kwargs,
    )
    c.slept = slept  # type: ignore[attr-defined]
    return c


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_retries_then_transient_error(caplog):
    c = client(f"http://127.0.0.1:{_closed_port()}", max_retries=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        c.get_json("/v2/stocks/bars", {"symbols": "AAPL"})
    assert not info.value.permanent and "after 3 attempts" in str(info.value)
    assert len(c.slept) == 2
    assert SECRET not in caplog.text and SECRET not in str(info.value)


def test_retry_after_longer_than_allowed_fails_at_once():
    with LoopbackServer(
        lambda *a: (429, {"Retry-After": "600"}, {"message": "later"})
    ) as s:
        c = client(s.url, max_retry_after=60)
        with pytest.raises(RateLimitedError) as info:
            c.get_json("/x")
    assert info.value.retry_after == 600 and len(s.requests) == 1 and c.slept == []


def test_backoff_grows_and_is_capped():
    with LoopbackServer(lambda *a: (503, {}, "busy")) as s:
        c = client(s.url, max_retries=6, backoff=1.0, max_backoff=4.0)
        with pytest.raises(ProviderError):
            c.get_json("/x")
    assert len(c.slept) == 6
    assert c.slept[0] <= 1.5 and max(c.slept) <= 4.5 and c.slept[-1] >= 2.0


@pytest.mark.parametrize(
    "status,error",
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (400, InvalidRequestError),
        (422, InvalidRequestError),
        (404, InvalidRequestError),
    ],
)
def test_status_mapping(status, error):
    with LoopbackServer(lambda *a: (status, {}, {"message": "nope"})) as s:
        with pytest.raises(error) as info:
            client(s.url).get_json("/x")
    assert info.value.permanent and info.value.status == status
    assert "nope" in str(info.value) and len(s.requests) == 1


def test_non_json_success_body_is_an_error():
    with LoopbackServer(lambda *a: (200, {}, "<html>maintenance</html>")) as s:
        with pytest.raises(ProviderError, match="not JSON"):
            client(s.url).get_json("/x")


def test_secret_never_in_retry_logs(caplog):
    calls = []

    def handler(path, query, headers):
        calls.append(1)
        return (
            (500, {}, {"message": "boom"})
            if len(calls) == 1
            else (200, {}, {"ok": True})
        )

    with LoopbackServer(handler) as s, caplog.at_level(logging.DEBUG):
        c = client(s.url, params={"token": SECRET})
        assert c.get_json("/x", {"a": "1"}) == {"ok": True}
    assert "HTTP 500" in caplog.text
    assert SECRET not in "".join(
        r.getMessage() for r in caplog.records if r.name.startswith("marketdata")
    )
