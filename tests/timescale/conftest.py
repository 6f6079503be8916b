"""A TimescaleDB engine per test module, migrated with the project's
migrations (tests/timescale/engine.py).

Where node or the npm packages are missing the tests skip with the reason,
except under `make test` (TIMESCALE_ENGINE=require), where they fail: the
Makefile installs the packages, so a missing engine there is a defect.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.test import override_settings

from tests.timescale.engine import TimescaleEngine, engine_connection, engine_missing


@pytest.fixture(scope="module")
def timescale(django_db_blocker):
    missing = engine_missing()
    if missing:
        if os.environ.get("TIMESCALE_ENGINE") == "require":
            pytest.fail(f"TimescaleDB engine required but unusable: {missing}")
        pytest.skip(f"TimescaleDB engine unavailable: {missing}")
    engine = TimescaleEngine()
    started = time.monotonic()
    engine.start()
    engine.wrapper_ = engine.wrapper()
    try:
        with django_db_blocker.unblock(), engine_connection(engine.wrapper_):
            # TIMESCALE=require: a migration that silently fell back to plain
            # partitions here would fail instead.
            with override_settings(TIMESCALE="require"):
                call_command("migrate", interactive=False, verbosity=0)
            from marketdata.services import instruments_upsert
            from marketdata.universe import universe_rows

            instruments_upsert(rows=universe_rows())
        engine.ready_s = time.monotonic() - started
        yield engine
    finally:
        engine.wrapper_.close()
        engine.stop()


@pytest.fixture
def on_engine(timescale, django_db_blocker):
    """`with on_engine(): ...` runs the block with Django's default
    connection on the engine."""

    @contextmanager
    def use():
        with django_db_blocker.unblock(), engine_connection(timescale.wrapper_):
            yield timescale

    return use
