"""Set up Django for a bench script (DEBUG on, a dedicated database and Redis DB)."""

from __future__ import annotations

import os


def setup() -> None:
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tapeline_bench"
    )
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from core.database import database_ensure

    database_ensure()
    call_command("migrate", verbosity=0)
