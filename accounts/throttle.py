"""Login throttling on Redis counters: failures per username and per client
address; past a few, each attempt waits a little longer; past more, log-ins
are locked for a while. Keys live under `core.redis.key("login", ...)` and
expire by themselves, so every web process shares one count and nothing needs
cleaning up.

While Redis is unreachable the throttle lets log-ins through (the outage is
logged once, by the process's shared Redis outage record): locking everyone
out of the desk is worse than a quarter hour without a brake on guessing.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings

from core.redis import REDIS_ERRORS, key, redis_client, redis_outage

USERNAME, IP = "username", "ip"


@dataclass(frozen=True)
class Refusal:
    """Why a log-in is not even tried, and for how many more seconds."""

    message: str
    retry_after: int
    locked: bool


def client_ip(request) -> str:
    """The client's address: the socket's, or with TRUSTED_PROXY_COUNT
    proxies in front, the entry they vouch for in X-Forwarded-For."""
    count = settings.TRUSTED_PROXY_COUNT
    if count > 0:
        hops = [
            h.strip()
            for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if h.strip()
        ]
        if len(hops) >= count:
            return hops[-count][:64]
    return (request.META.get("REMOTE_ADDR") or "unknown")[:64]


def _ident(value: str) -> str:
    # Usernames are free text: hash them into the key (fixed length, no
    # separators, nothing personal left readable in Redis).
    return hashlib.sha256(value.casefold().encode()).hexdigest()[:32]


def _keys(scope: str, value: str) -> tuple[str, str, str]:
    ident = _ident(value)
    return (
        key("login", "fail", scope, ident),
        key("login", "wait", scope, ident),
        key("login", "lock", scope, ident),
    )


def _scopes(*, ip: str, username: str) -> list[tuple[str, str, int]]:
    return [
        (USERNAME, username, settings.LOGIN_LOCK_AFTER),
        (IP, ip, settings.LOGIN_IP_LOCK_AFTER),
    ]


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _lock_message(scope: str, seconds: float) -> str:
    if scope == USERNAME:
        return (
            "Too many failed log-ins for this username: it is locked for "
            f"{_minutes(seconds)}. Reset your password to unlock it now, or ask "
            "an administrator."
        )
    return (
        "Too many failed log-ins from your network address: log-ins from it "
        f"are locked for {_minutes(seconds)}."
    )


def _wait_message(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    unit = "second" if seconds == 1 else "seconds"
    return f"Too many failed log-ins: wait {seconds} {unit} before trying again."


def _redis_call(fn, *, doing: str):
    """`fn(client)`, or None while Redis is unreachable (logged once)."""
    outage = redis_outage()
    if outage.down and not outage.should_try():
        outage.skipped("login throttle checks")
        return None
    started = time.monotonic()
    try:
        result = fn(redis_client())
    except REDIS_ERRORS as exc:
        outage.failed(exc, doing=doing, impact="Log-ins are not throttled")
        return None
    outage.succeeded(attempted_at=started)
    return result


def login_refusal(*, ip: str, username: str) -> Refusal | None:
    """A refusal while a lock or a wait holds for this username or address."""
    scopes = _scopes(ip=ip, username=username)

    def read(client):
        pipe = client.pipeline(transaction=False)
        for scope, value, _ in scopes:
            _, wait, lock = _keys(scope, value)
            pipe.pttl(lock)
            pipe.pttl(wait)
        return pipe.execute()

    ttls = _redis_call(read, doing="checking the login throttle")
    if ttls is None:
        return None
    waits = []
    for index, (scope, _, _) in enumerate(scopes):
        lock_ms, wait_ms = ttls[2 * index], ttls[2 * index + 1]
        if lock_ms > 0:
            seconds = lock_ms / 1000
            return Refusal(_lock_message(scope, seconds), math.ceil(seconds), True)
        if wait_ms > 0:
            waits.append(wait_ms / 1000)
    if waits:
        seconds = max(waits)
        return Refusal(_wait_message(seconds), math.ceil(seconds), False)
    return None


def login_failed(*, ip: str, username: str, request=None) -> Refusal | None:
    """Count a failed log-in. Returns the refusal the next attempt will meet
    (a wait or a lock this failure started), for the user to see now."""
    scopes = _scopes(ip=ip, username=username)
    window = settings.LOGIN_FAILURE_WINDOW
    lock_seconds = settings.LOGIN_LOCK_SECONDS

    def count(client):
        pipe = client.pipeline(transaction=False)
        for scope, value, _ in scopes:
            fail, _, _ = _keys(scope, value)
            pipe.incr(fail)
            pipe.expire(fail, window)
        counts = pipe.execute()[::2]
        refusals, locked = [], []
        pipe = client.pipeline(transaction=False)
        for (scope, value, lock_after), failures in zip(scopes, counts, strict=True):
            fail, wait, lock = _keys(scope, value)
            if failures >= lock_after:
                pipe.set(lock, "1", ex=lock_seconds)
                # Counting starts afresh once the lock ends.
                pipe.delete(fail, wait)
                locked.append((scope, value))
                refusals.append(
                    Refusal(_lock_message(scope, lock_seconds), lock_seconds, True)
                )
            elif failures >= settings.LOGIN_DELAY_AFTER:
                extra = failures - settings.LOGIN_DELAY_AFTER
                delay = min(settings.LOGIN_DELAY_SECONDS * 2**extra, 60.0)
                pipe.set(wait, "1", px=max(1, int(delay * 1000)))
                refusals.append(Refusal(_wait_message(delay), math.ceil(delay), False))
        pipe.execute()
        return refusals, locked

    result = _redis_call(count, doing="counting a failed log-in")
    if result is None:
        return None
    refusals, locked = result
    for scope, value in locked:
        from accounts.signals import login_locked

        login_locked.send(
            sender=None,
            scope=scope,
            value=value,
            seconds=lock_seconds,
            request=request,
        )
    if not refusals:
        return None
    return max(refusals, key=lambda r: (r.locked, r.retry_after))


def login_succeeded(*, username: str) -> None:
    """Forget the username's failures. The address's count stays: a guesser
    with one valid account of their own must not reset it by logging in."""
    fail, wait, _ = _keys(USERNAME, username)
    _redis_call(lambda c: c.delete(fail, wait), doing="clearing login failures")


def username_release(*, username: str) -> None:
    """Lift a username's lock and count, quietly while Redis is down (a
    password reset does this: proving the address is enough)."""
    _redis_call(
        lambda c: c.delete(*_keys(USERNAME, username)), doing="lifting a login lock"
    )


def login_unlock(*, username: str = "", ip: str = "") -> int:
    """Lift the locks, waits and counts of a username and/or an address;
    returns how many keys held something. Raises on a Redis error (callers
    are staff tools that should say so)."""
    keys = []
    if username:
        keys += _keys(USERNAME, username)
    if ip:
        keys += _keys(IP, ip)
    if not keys:
        return 0
    return int(redis_client().delete(*keys))
