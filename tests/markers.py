"""Markers shared by test modules."""

from __future__ import annotations

import pytest

# A transactional database whose flush truncates with CASCADE (available_apps):
# it also empties the raw-SQL tables that reference instruments (rollups),
# which a plain flush refuses to.
TRANSACTIONAL = pytest.mark.django_db(
    transaction=True,
    available_apps=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.admin",
        "django.contrib.sessions",
        "core",
        "marketdata",
        "streaming",
        "alerts",
        "preferences",
    ],
)
