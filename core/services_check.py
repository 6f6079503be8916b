"""Clear one-line failures when PostgreSQL or Redis cannot be reached."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.db import connections
from django.db.utils import OperationalError

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no"
)


class ServiceUnavailable(RuntimeError):
    """A backing service is down; the message is one line meant for a human."""


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or ""
    password = ":***" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db.get('NAME')}"


def database_error_message(exc: Exception) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else "no answer"
    if "does not exist" in text:
        return (
            f"PostgreSQL at {database_url()} answers but the database is missing "
            f"({first}). Create it with: python manage.py ensure_database"
        )
    return (
        f"PostgreSQL is not reachable at {database_url()} ({first}). "
        f"Start it with: {PG_START}"
    )


def database_check() -> None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except OperationalError as exc:
        raise ServiceUnavailable(database_error_message(exc)) from exc


def redis_check() -> None:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            f"Redis is not reachable at {mask_url(settings.REDIS_URL)} ({exc}). "
            f"Start it with: {REDIS_START}"
        ) from exc


def services_check() -> None:
    database_check()
    redis_check()
