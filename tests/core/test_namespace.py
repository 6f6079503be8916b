"""Many installations, one Redis (issue 12, item 4).

Installation A is this test process (namespace from CHANNELS_PREFIX, as the
suite sets it); installation B is another process on the same Redis database
with its own TAPELINE_NAMESPACE, doing what its stream worker, Dramatiq
clients and history jobs do: report a worker's health, store a snapshot,
publish to an instrument's group, take rate-limit slots, queue a job. A sees
none of it; B's data is really there (read back under B's namespace), so
the test fails if the namespace were ignored.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from core.channel_layer import ResilientPubSubChannelLayer
from core.groups import symbol_group
from core.namespace import NamespaceError, channel_prefix, namespace_check
from core.redis import key, redis_client
from marketdata.ratelimit import RedisRateLimiter
from streaming.selectors import feed_status_get, health_key
from streaming.services import feed_health_put
from streaming.snapshots import snapshots_get
from tests.core.test_settings import run_manage

ROOT = Path(__file__).resolve().parents[2]
OTHER = "tapeline-b.test"
OTHER_WORKER = "other-host:4242:0/1"

INSTALLATION_B = f"""
import time
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from alerts.tasks import delivery_send
from core.groups import symbol_group
from marketdata.ratelimit import RedisRateLimiter
from streaming.services import feed_health_put
from streaming.snapshots import snapshots_put

feed_health_put(worker_id={OTHER_WORKER!r}, document={{
    "id": {OTHER_WORKER!r}, "shard": "0/1", "state": "running",
    "reported_at": time.time(), "connections": []}})
snapshots_put(snapshots=[{{"symbol": "AAPL", "price": "999.99"}}])
async_to_sync(get_channel_layer().group_send)(
    symbol_group("AAPL"), {{"type": "bar.closed", "from": "B"}})
limiter = RedisRateLimiter(provider="alpaca", per_minute=1, burst=1)
print("first", limiter.try_acquire(), "second", limiter.try_acquire())
delivery_send.send(1)
"""


def run_installation_b() -> subprocess.CompletedProcess:
    env = {**os.environ, "TAPELINE_NAMESPACE": OTHER}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", INSTALLATION_B],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def alerts_depth() -> int:
    """Messages waiting in this installation's `alerts` queue."""
    return redis_client().hlen(key("dramatiq", "alerts") + ".msgs")


async def listen_while(action, layers, group: str, wait: float = 1.5) -> list:
    """Join `group` on each layer, run `action` in a thread, then collect what
    each layer's channel received within `wait` seconds."""
    channels = []
    for layer in layers:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        channels.append(channel)
    result = await asyncio.get_running_loop().run_in_executor(None, action)
    received = []
    for layer, channel in zip(layers, channels, strict=True):
        try:
            received.append(await asyncio.wait_for(layer.receive(channel), wait))
        except TimeoutError:
            received.append(None)
        await layer.group_discard(group, channel)
    return [result, *received]


@pytest.mark.django_db
def test_a_second_installation_on_the_same_redis_is_invisible(client, staff_user):
    own_worker = {
        "id": "own-host:1:0/1",
        "shard": "0/1",
        "state": "running",
        "reported_at": time.time(),
        "connections": [],
    }
    feed_health_put(worker_id=own_worker["id"], document=own_worker)
    before = alerts_depth()
    redis_db = (urlsplit(settings.REDIS_URL).path.lstrip("/") or "0").split("/")[0]
    layer_a = get_channel_layer()
    layer_b = ResilientPubSubChannelLayer(
        hosts=[settings.REDIS_URL],
        prefix=channel_prefix(namespace=OTHER, redis_db=redis_db),
    )

    result, got_a, got_b = asyncio.run(
        listen_while(run_installation_b, [layer_a, layer_b], symbol_group("AAPL"))
    )
    assert result.returncode == 0, result.stderr
    asyncio.run(layer_b.flush())

    # Installation A: its status page lists its own worker only.
    client.force_login(staff_user)
    html = client.get(reverse("dashboard:status")).content.decode()
    assert own_worker["id"] in html and OTHER_WORKER not in html
    assert [w["id"] for w in feed_status_get()["workers"]] == [own_worker["id"]]
    assert snapshots_get(symbols=["AAPL"]) == {}
    assert got_a is None  # B's group message never reached A's consumers
    assert alerts_depth() == before  # A's workers would not run B's job
    # B's rate-limit use does not throttle A toward the same provider.
    assert RedisRateLimiter(provider="alpaca", per_minute=1, burst=1).try_acquire() == 0

    # Installation B: all of it is in the same Redis database, under B's name.
    assert got_b is not None and got_b["from"] == "B"
    assert "first 0.0 second" in result.stdout
    assert float(result.stdout.split("second")[1]) > 0  # B's own limit binds
    with override_settings(TAPELINE_NAMESPACE=OTHER):
        assert [w["id"] for w in feed_status_get()["workers"]] == [OTHER_WORKER]
        assert snapshots_get(symbols=["AAPL"])["AAPL"]["price"] == "999.99"
    assert redis_client().hlen(f"{OTHER}:dramatiq:alerts.msgs") == 1


def worker_document(worker_id: str, *, age: float, state: str = "running") -> dict:
    return {
        "id": worker_id,
        "shard": "0/1",
        "state": state,
        "reported_at": time.time() - age,
        "connections": [],
    }


@pytest.mark.django_db
def test_a_worker_that_stopped_reporting_disappears_after_the_configured_time(
    settings, client, staff_user
):
    settings.STREAM_WORKER_FORGET = 60
    feed_health_put(worker_id="live", document=worker_document("live", age=1))
    feed_health_put(worker_id="silent", document=worker_document("silent", age=30))
    feed_health_put(worker_id="gone", document=worker_document("gone", age=90))
    client.force_login(staff_user)
    html = client.get(reverse("dashboard:status")).content.decode()
    workers = {w["id"]: w for w in feed_status_get()["workers"]}
    assert set(workers) == {"live", "silent"}
    assert workers["live"]["alive"] and not workers["silent"]["alive"]
    assert "silent" in html and "gone" not in html
    # The forgotten document is deleted, not just hidden.
    assert sorted(redis_client().hkeys(health_key())) == [b"live", b"silent"]

    settings.STREAM_WORKER_FORGET = 20
    assert [w["id"] for w in feed_status_get()["workers"]] == ["live"]


@pytest.mark.parametrize(
    "value",
    ["two words", "tape:line", "tab\there", "new\nline", "café", "-dash", "x" * 41],
)
def test_a_namespace_redis_or_channels_cannot_take_is_refused(value):
    with pytest.raises(NamespaceError) as refused:
        namespace_check(value)
    assert str(refused.value).startswith(f"TAPELINE_NAMESPACE={value!r}")


def test_a_bad_namespace_stops_every_command_with_one_line():
    result = run_manage("check", DEBUG="1", TAPELINE_NAMESPACE="desk one:prod")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Configuration error: TAPELINE_NAMESPACE='desk one:prod' cannot be used "
        "(' ', ':'): a namespace may hold only ASCII letters, digits, '-', '_' "
        "and '.', and starts with a letter or digit."
    ]


def test_the_namespace_defaults_to_the_database_name_and_reaches_every_part():
    show = (
        "from django.conf import settings as s; print(s.TAPELINE_NAMESPACE, "
        "s.CACHES['default']['KEY_PREFIX'], "
        "s.CHANNEL_LAYERS['default']['CONFIG']['prefix'], "
        "s.DRAMATIQ_BROKER['OPTIONS']['namespace']); "
        "from core.redis import key; print(key('streams', 'health'))"
    )
    result = run_manage(
        "shell",
        "-c",
        show,
        DEBUG="1",
        TAPELINE_NAMESPACE="",
        CHANNELS_PREFIX="",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/desk_east",
        REDIS_URL="redis://127.0.0.1:6379/3",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5:] == [
        "desk_east", "desk_east", "desk_east.3.", "desk_east:dramatiq",
        "desk_east:streams:health",
    ]  # fmt: skip
    result = run_manage(
        "shell", "-c", show, DEBUG="1", TAPELINE_NAMESPACE="desk-west",
        CHANNELS_PREFIX="ignored",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5] == "desk-west"
