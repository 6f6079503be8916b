"""The installation's namespace: what keeps installations sharing one Redis apart.

Every Redis key (`core.redis.key`), the cache's key prefix, the Dramatiq
broker's queues and the channel layer's prefix start with it, so two
installations on one Redis never read each other's worker health, snapshots,
rate limits or jobs, nor receive each other's group messages.

`TAPELINE_NAMESPACE` sets it; `CHANNELS_PREFIX` (the older name, still used
by the test suite and benches to isolate runs) is read when it is absent; the
default is the PostgreSQL database's name, so installations with their own
databases are apart without configuring anything.

Allowed: ASCII letters, digits, `-`, `_`, `.`, at most 40 characters,
starting with a letter or digit. The channel layer puts the namespace in front
of channel names that channels allows only in those characters and under 100
characters (a consumer's channel adds 41), and `:` separates the parts of
Redis keys. Imported by `core.settings`: nothing here reads Django's settings.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

MAX_LENGTH = 40
FALLBACK = "tapeline"
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class NamespaceError(ImproperlyConfigured):
    """A namespace that cannot be used (`manage.py` prints it as one line)."""


def namespace_check(value: str, *, source: str = "TAPELINE_NAMESPACE") -> str:
    """`value` when it is a usable namespace; else ImproperlyConfigured with
    one line naming `source` and what is wrong."""
    if not value:
        raise NamespaceError(f"{source} is empty: set a namespace or unset it.")
    if len(value) > MAX_LENGTH:
        raise NamespaceError(
            f"{source}={value!r} is {len(value)} characters long; at most "
            f"{MAX_LENGTH} are allowed (channel names must stay under 100)."
        )
    if not _VALID.fullmatch(value):
        bad = sorted(
            {c for c in value if not (c.isascii() and (c.isalnum() or c in "_.-"))}
        )
        shown = ", ".join(repr(c) for c in bad) or "its first character"
        raise NamespaceError(
            f"{source}={value!r} cannot be used ({shown}): a namespace may hold "
            "only ASCII letters, digits, '-', '_' and '.', and starts with a "
            "letter or digit."
        )
    return value


def namespace_from_database(name: str) -> str:
    """A valid namespace made from a database name (any other character
    becomes `_`); `tapeline` when nothing usable is left."""
    cleaned = _INVALID_CHARS.sub("_", name or "").lstrip("_.-")[:MAX_LENGTH]
    return cleaned or FALLBACK


def namespace_resolve(
    *, explicit: str | None, legacy: str | None, database: str
) -> str:
    """The namespace from `TAPELINE_NAMESPACE` (`explicit`), else
    `CHANNELS_PREFIX` (`legacy`), else the database name (an empty value,
    `NAME=` in .env, means unset); a set but invalid value is refused, never
    repaired."""
    if explicit:
        return namespace_check(explicit, source="TAPELINE_NAMESPACE")
    if legacy:
        return namespace_check(legacy, source="CHANNELS_PREFIX")
    return namespace_from_database(database)


def channel_prefix(*, namespace: str, redis_db: str) -> str:
    """The channel layer's prefix. Redis pub/sub ignores database numbers, so
    the prefix carries the number too: installations with the same namespace
    on different databases of one Redis stay apart as well."""
    return f"{namespace}.{redis_db}."
