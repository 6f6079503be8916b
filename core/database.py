"""Create the configured PostgreSQL database when it does not exist yet."""

from __future__ import annotations

import psycopg
from django.conf import settings
from psycopg import sql


def database_ensure() -> bool:
    """Create the default database if missing; True when it was created."""
    db = settings.DATABASES["default"]
    params = {
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    with psycopg.connect(
        **{k: v for k, v in params.items() if v}, autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
        return True
