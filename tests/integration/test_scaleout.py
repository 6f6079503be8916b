"""The scaled form as real processes: the exchange simulator, two stream-worker
shards (`start_streams --shard 0/2`, `1/2`), two Daphne processes, and the
channel layer spread over two Redis servers (`CHANNEL_REDIS_URLS`), on this
run's PostgreSQL test database. What a user would notice if scaling out broke
something: an instrument streamed twice or by nobody, a web process whose
clients miss an instrument, an update lost between the Redis servers.
Deadlines below only bound the waiting; nothing asserts a duration."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from itertools import pairwise

import orjson
import pytest
import redis
from django.conf import settings
from django.test import Client

from marketdata.services import watchlist_create
from streaming.shard import shard_of
from tests.e2e.conftest import Stack, database_url
from tests.plugins.private_redis import PrivateRedis
from tests.plugins.simulator import free_port

pytestmark = [pytest.mark.integration, pytest.mark.transactional]

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMD", "SPY", "QQQ", "JPM", "BTC/USD", "ETH/USD"]
CLIENTS_PER_WEB = 2


def _prefix() -> str:
    """The channel prefix every process of this installation uses (the
    namespace and the Redis database number, core.settings)."""
    return settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]


def printed_symbols(stack: Stack, name: str) -> set[str]:
    """The symbols of every event a `--print-events` shard printed."""
    log = stack.logs[name]
    log.seek(0)
    symbols = set()
    for line in log.read().splitlines():
        if line.startswith(b"{"):
            symbols.add(orjson.loads(line)["symbol"])
    return symbols


async def watch(*, webs: list[Stack], cookie: str, hosts: list[str], until) -> dict:
    """Clients on every Daphne process and a raw subscriber on the layer, all
    watching SYMBOLS, until `until(seen)` holds (or 90 s): what each got."""
    from websockets.asyncio.client import connect

    from core.channel_layer import ResilientPubSubChannelLayer
    from core.groups import symbol_group

    seen = {
        "web": {web.web_port: {} for web in webs},  # port -> symbol -> seqs
        "layer": {s: [] for s in SYMBOLS},  # every published seq, in order
        "numsub": {},
    }
    layer = ResilientPubSubChannelLayer(hosts=hosts, prefix=_prefix())
    channel = await layer.new_channel()
    for symbol in SYMBOLS:
        await layer.group_add(symbol_group(symbol), channel)

    async def raw() -> None:
        while True:
            message = await layer.receive(channel)
            doc = message["snapshot"]
            seen["layer"][doc["symbol"]].append(doc["seq"])

    async def client(web: Stack) -> None:
        got = seen["web"][web.web_port]
        async with connect(
            f"ws://127.0.0.1:{web.web_port}/ws/market/",
            additional_headers={
                "Cookie": f"sessionid={cookie}",
                "Origin": f"http://127.0.0.1:{web.web_port}",
            },
        ) as ws:
            await ws.send(
                orjson.dumps({"action": "subscribe", "symbols": SYMBOLS}).decode()
            )
            async for message in ws:
                frame = orjson.loads(message)
                if frame["type"] == "updates":
                    for doc in frame["snapshots"]:
                        got.setdefault(doc["symbol"], set()).add(doc["seq"])

    tasks = [asyncio.create_task(raw())] + [
        asyncio.create_task(client(web)) for web in webs for _ in range(CLIENTS_PER_WEB)
    ]
    try:
        deadline = time.monotonic() + 90
        while not until(seen) and time.monotonic() < deadline:
            for task in tasks:
                if task.done():
                    task.result()  # a client that failed fails the test
            await asyncio.sleep(0.2)
        # Who listens to each instrument's group, on the server that has it.
        for host in hosts:
            server = redis.Redis.from_url(host)
            channels = [c.decode() for c in server.pubsub_channels(f"{_prefix()}*")]
            for name, count in server.pubsub_numsub(*channels) if channels else []:
                seen["numsub"][name.decode()] = (host, count)
            server.close()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await layer.flush()
    return seen


def test_two_shards_two_web_processes_and_two_redis_servers_deliver_everything(
    simulator_process, user, instruments
):
    shards = {shard_of(s, 2) for s in SYMBOLS}
    assert shards == {0, 1}, "the instruments must fall to both shards"
    watchlist_create(owner=user, name="Scaled", symbols=SYMBOLS)
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value

    simulator = simulator_process("--hours", "always", "--rate", "4")
    layer_servers = [PrivateRedis(), PrivateRedis()]
    webs: list[Stack] = []
    try:
        for server in layer_servers:
            server.start()
        hosts = [server.url(0) for server in layer_servers]
        env = {
            **os.environ,
            "DEBUG": "1",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,  # snapshots, health: this run's db
            "CHANNEL_REDIS_URLS": ",".join(hosts),
            "TAPELINE_PROVIDER": "simulator",
            "TAPELINE_CRYPTO_PROVIDER": "",
            "SIMULATOR_HOST": "127.0.0.1",
            "SIMULATOR_PORT": str(simulator.port),
            "SIMULATOR_SEED": str(simulator.seed),
            "LOG_LEVEL": "WARNING",
        }
        webs = [Stack(env=env, simulator=simulator, web_port=free_port()) for _ in "ab"]
        streams = webs[0]  # runs the shards beside its web process
        for index in range(2):
            streams.spawn(
                f"shard{index}", "manage.py", "start_streams",
                "--shard", f"{index}/2", "--print-events",
            )  # fmt: skip
        for web in webs:
            web.start_web()

        def everything_arrived(seen) -> bool:
            return all(
                set(got) == set(SYMBOLS) and all(len(v) >= 3 for v in got.values())
                for got in seen["web"].values()
            ) and all(len(seqs) >= 10 for seqs in seen["layer"].values())

        seen = asyncio.run(
            watch(webs=webs, cookie=cookie, hosts=hosts, until=everything_arrived)
        )
        for index in range(2):
            process = streams.processes[f"shard{index}"]
            assert process.poll() is None, streams.log(f"shard{index}")
            process.send_signal(signal.SIGTERM)
            process.wait(15)
        owned = [printed_symbols(streams, f"shard{index}") for index in range(2)]
    finally:
        for web in webs:
            for name in list(web.processes):
                web.stop(name)
        for server in layer_servers:
            server.stop()

    # The shards split the instruments: none streamed twice, none left out.
    assert owned[0] & owned[1] == set()
    assert owned[0] | owned[1] == set(SYMBOLS)
    assert owned[0] == {s for s in SYMBOLS if shard_of(s, 2) == 0}

    # Every instrument's updates reach clients of either web process.
    for port, got in seen["web"].items():
        assert set(got) == set(SYMBOLS), (port, sorted(got))

    # Over two Redis servers nothing is lost: each instrument's seq numbers
    # arrive one after another, with no gap.
    for symbol, seqs in seen["layer"].items():
        assert len(seqs) >= 10, (symbol, seqs)
        assert [b - a for a, b in pairwise(seqs) if b != a + 1] == [], (symbol, seqs)

    # Both servers carry instrument groups, and each group has one subscriber
    # per web process (whatever its client count) and the test's own.
    groups = {n: v for n, v in seen["numsub"].items() if "__group__sym." in n}
    assert len(groups) == len(SYMBOLS), groups
    assert {host for host, _ in groups.values()} == set(hosts), groups
    assert {count for _, count in groups.values()} == {len(webs) + 1}, groups
