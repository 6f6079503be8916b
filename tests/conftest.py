from __future__ import annotations

import io
import os
import time

import pytest
from django.conf import settings

from core.redis import redis_client

pytest_plugins = ["tests.plugins.simulator", "tests.plugins.private_redis"]


def pytest_configure(config):
    """Hash the tests' passwords with a fast hasher: PBKDF2's million rounds
    cost half a second per user. Servers the tests spawn keep the project's
    hashers, so users they log in are given PBKDF2 hashes (`tests.e2e`)."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    # Processes the tests start (stacks, workers, web) are the same
    # installation as the test process, though pytest-django points them at
    # the test database: its name would give them another namespace.
    os.environ.setdefault("TAPELINE_NAMESPACE", settings.TAPELINE_NAMESPACE)


@pytest.fixture(autouse=True)
def _flush_redis():
    """Each test starts with an empty Redis test database (and no REST
    figures of an earlier test still waiting in memory for it)."""
    from marketdata.providers.rest_stats import rest_stats_flush

    client = redis_client()
    rest_stats_flush()  # an earlier test's figures go to Redis, then with it
    client.flushdb()
    yield
    client.flushdb()


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory(username="trader")


@pytest.fixture
def other_user(db):
    from tests.factories import UserFactory

    return UserFactory(username="rival")


@pytest.fixture
def staff_user(db):
    from tests.factories import UserFactory

    return UserFactory(username="ops", is_staff=True, is_superuser=True)


@pytest.fixture
def client_for(db):
    """`client_for(user)`: a test client logged in as `user`."""
    from django.test import Client

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def user_client(client_for, user):
    """A test client logged in as `user`."""
    return client_for(user)


@pytest.fixture
def staff_client(client_for, staff_user):
    """A test client logged in as `staff_user`."""
    return client_for(staff_user)


@pytest.fixture
def instruments(db):
    from marketdata.services import instruments_upsert
    from marketdata.universe import universe_rows

    instruments_upsert(rows=universe_rows())
    from marketdata.models import Instrument

    return {i.symbol: i for i in Instrument.objects.all()}


def _feed_connection(worker, asset_class: str):
    """A simulator connection feeding `worker`, never started (tests hand its
    batches to `worker.process`)."""
    from marketdata.providers import provider_class
    from streaming.connection import FeedConnection

    return FeedConnection(
        key=f"simulator:{asset_class}",
        provider=provider_class("simulator")(),
        asset_class=asset_class,
        sink=worker.sink,
    )


@pytest.fixture
def make_worker():
    """`make_worker(**options)` -> (worker, an equity connection): a stream
    worker for calling its steps directly, with a publisher on the test
    channel layer and no alert engine; nothing started, no sockets."""
    from channels.layers import get_channel_layer

    from streaming.publisher import Publisher
    from streaming.worker import StreamWorker, WorkerOptions

    def make(*, stdout=None, **options):
        worker = StreamWorker(
            options=WorkerOptions(**options), stdout=stdout or io.StringIO()
        )
        worker.publisher = Publisher(
            layer=get_channel_layer(), hz=worker.options.publish_hz
        )
        worker.alert_engine = None
        return worker, _feed_connection(worker, "equity")

    return make


@pytest.fixture
def attach():
    """`attach(worker, instrument, connection=None, new=False)` -> the
    instrument's `InstrumentState`, admitted and routed to `connection` (a
    new simulator connection for its asset class when None) as the worker's
    subscription step does. `new`: its next event is the subscription's
    first (gap and reconciliation bookkeeping start there)."""

    def attach(worker, instrument, connection=None, *, new: bool = False):
        if connection is None:
            connection = _feed_connection(worker, instrument.asset_class)
        row = {
            "id": instrument.id,
            "symbol": instrument.symbol,
            "asset_class": instrument.asset_class,
            "provider_symbols": {},
            "provider": "",
        }
        now = time.time()
        subscriptions = worker.subscriptions
        state = subscriptions.admit(row, provider=connection.provider_name, now=now)
        subscriptions.route(state, row, connection, now)
        state.first_event_pending = new
        return state

    return attach


@pytest.fixture
def new_york_evening(monkeypatch):
    """The market calendar's clock at 20:00 in New York on 2026-12-06, when
    the UTC date is already 2026-12-07 (`marketdata.calendar.market_date`)."""
    from datetime import UTC, datetime

    import marketdata.calendar
    from tests.clock import fixed_datetime

    evening = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    monkeypatch.setattr(marketdata.calendar, "datetime", fixed_datetime(evening))
    return evening


def pytest_itemcollected(item):
    """`@pytest.mark.transactional`: a transactional database (committed
    writes other threads and processes see) whose flush truncates every app's
    tables with CASCADE (`available_apps`), so the raw-SQL tables that
    reference instruments (rollups) do not block it."""
    if item.get_closest_marker("transactional") is not None:
        item.add_marker(
            pytest.mark.django_db(
                transaction=True, available_apps=list(settings.INSTALLED_APPS)
            )
        )


def pytest_report_header(config):
    return f"redis: {settings.REDIS_URL}"


BROWSER_FIXTURES = {"page", "context", "browser", "browser_context_args"}


def pytest_collection_modifyitems(config, items):
    """Run browser tests last: pytest-playwright's sync API keeps an event loop
    running in the main thread for the rest of the session, which would make
    every later `asyncio.run()` (websocket and simulator tests) fail."""
    browser = [
        item
        for item in items
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ()))
    ]
    if browser:
        others = [item for item in items if item not in set(browser)]
        items[:] = others + browser


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test shows what the stack's processes printed."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    stack = getattr(item, "funcargs", {}).get("stack")
    for name in getattr(stack, "logs", {}):
        report.sections.append((f"stack log: {name}", stack.log(name)))
