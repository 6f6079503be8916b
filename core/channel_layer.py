"""The channel layer: channels-redis's pub/sub layer, made to ride out Redis
outages (`CHANNEL_LAYERS` names `ResilientPubSubChannelLayer`).

On its own, `RedisPubSubChannelLayer` fails while Redis is away:
`new_channel` and `group_add` raise (a browser's WebSocket handshake answers
HTTP 500), its receive task logs a traceback every second, subscriptions
attempted during the outage are never made, and the first publish after Redis
restarts fails on a pooled connection the server closed. This subclass:

- remembers the subscriptions it could not make (or undo) and makes them as
  soon as Redis answers (tried at most once a second), so consumers and the
  market hub that joined during an outage start receiving by themselves;
  subscriptions made before the outage are restored by redis-py on reconnect;
- reports failures to the process's `core.redis.redis_outage()` of that
  server: one log line when the outage starts, one when it ends;
- retries a publish once on a connection error (the retry opens a new one);
- tells consumers whether the layer's Redis answers (`available`);
- sends many group messages in one command per Redis (`group_send_many`: a
  Lua script that PUBLISHes each; the stream worker publishes up to one
  update per instrument per interval, and one PUBLISH call each cost it more
  CPU than receiving and normalizing the whole feed; a pipeline still meant
  encoding a command and reading a reply per message). The values and
  messages travel as one msgpack array in one argument: redis-py encodes
  each argument of a command in Python, which had cost the worker more than
  building the documents (bench/PROFILE-ingest.md). Messages are packed by
  msgspec where the layer's serializer is plain msgpack (the same bytes);
- on a layer of one Redis, sets keys in the same script call before its
  PUBLISHes (`group_send_many(..., store=…)`, when `stores_in(url)`): the
  worker's snapshots are stored before their updates are sent, in one round
  trip, with no thread hop.

Publishing still raises while Redis is away: a publisher decides what to do.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from urllib.parse import urlsplit

import msgspec
import redis
from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.serializers import MsgPackSerializer
from channels_redis.utils import _wrap_close, create_pool, decode_hosts
from msgpack import packb
from redis.asyncio.connection import Connection, ConnectionPool

from core.logs import RateLimitedLog
from core.redis import REDIS_ERRORS, redis_outage

logger = logging.getLogger(__name__)
# The receive task retries each second: one line a minute if it keeps failing.
receive_failures = RateLimitedLog(logger)


# The longest a `group_send_many` waits (the socket timeout its client does
# without); the stream worker's publisher bounds its batches tighter.
PUBLISH_TIMEOUT = 5.0
# KEYS: keys to set first; ARGV[1]: one msgpack array of their values, then
# channel, message, ... (a script runs whole: every key is set before the
# first PUBLISH).
PUBLISH_MANY = """
local items = cmsgpack.unpack(ARGV[1])
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], items[i])
end
for i = #KEYS + 1, #items, 2 do
  redis.call('PUBLISH', items[i], items[i + 1])
end
return (#items - #KEYS) / 2
"""
_PUBLISH_SHA = hashlib.sha1(PUBLISH_MANY.encode()).hexdigest().encode()


def _evalsha(keys: list[str], argument: bytes) -> bytes:
    """`EVALSHA` of `PUBLISH_MANY` with `keys` and one argument, in the
    Redis protocol (RESP: an array of bulk strings)."""
    parts = [b"EVALSHA", _PUBLISH_SHA, b"%d" % len(keys)]
    parts += [key.encode() for key in keys]
    parts.append(argument)
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out += (b"$%d\r\n" % len(part), part, b"\r\n")
    return b"".join(out)


def _database(url: str) -> tuple[str, str, str]:
    """(scheme, server, database number) of a Redis URL (database 0 when the
    URL names none)."""
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, (parts.path.strip("/") or "0")


def _host_url(host: dict) -> str:
    if "address" in host:
        return host["address"]
    return f"redis://{host.get('host', 'localhost')}:{host.get('port', 6379)}"


class ResilientShard(RedisSingleShardConnection):
    def __init__(self, host, channel_layer) -> None:
        super().__init__(host, channel_layer)
        self.outage = redis_outage(_host_url(host))
        self.pending: set[str] = set()  # wanted, not subscribed yet
        self.stale: set[str] = set()  # unwanted, not unsubscribed yet
        # `publish_many`'s own connection, made on first use (see there).
        self._publishing_pool: ConnectionPool | None = None
        self._publishing: Connection | None = None
        self._publish_lock = asyncio.Lock()
        # The outage (`Outage.outages`) in which a PING was sent: its PONG
        # ends it.
        self._pinged: int | None = None

    async def publish(self, channel, message):
        try:
            await super().publish(channel, message)
        except redis.ConnectionError:
            await super().publish(channel, message)

    async def publish_many(
        self, pairs: list[tuple[str, bytes]], store: dict[str, bytes] | None = None
    ) -> None:
        """SET every key of `store`, then PUBLISH every (channel, message) in
        order, in one script call, bounded by `PUBLISH_TIMEOUT`. On a
        connection of its own without a socket timeout (under one, redis-py
        sends each command from a task of its own), the command encoded
        here in one piece: redis-py's command layer cost the stream worker
        more than the round trip itself (bench/PROFILE-ingest.md)."""
        keys = list(store or ())
        items = [*(store or {}).values()]
        for pair in pairs:
            items.extend(pair)
        # Redis's Lua msgpack predates the bin type: bytes go as raw strings.
        command = _evalsha(keys, packb(items, use_bin_type=False))
        for attempt in (1, 2):
            try:
                async with self._publish_lock, asyncio.timeout(PUBLISH_TIMEOUT):
                    await self._publish_command(command)
                return
            except redis.ConnectionError:
                if attempt == 2:
                    raise

    async def _publish_command(self, command: bytes) -> None:
        """Send the script call and read its reply; load the script first
        when Redis does not know it (it restarted, or was flushed). An error
        or a cancellation on the way closes the connection (redis-py), and
        the next call opens a new one."""
        if self._publishing_pool is None:
            self._publishing_pool = create_pool({**self.host, "socket_timeout": None})
        if self._publishing is None:
            self._publishing = await self._publishing_pool.get_connection()
        connection = self._publishing
        await connection.send_packed_command(command, check_health=False)
        try:
            await connection.read_response()
        except redis.exceptions.NoScriptError:
            await connection.send_command("SCRIPT", "LOAD", PUBLISH_MANY)
            await connection.read_response()
            await connection.send_packed_command(command, check_health=False)
            await connection.read_response()

    async def flush(self):
        await super().flush()
        async with self._publish_lock:
            if self._publishing_pool is not None:
                await self._publishing_pool.aclose()
                self._publishing_pool = self._publishing = None

    async def subscribe(self, channel):
        self.stale.discard(channel)
        asked = channel not in self._subscribed_to  # else no round trip
        try:
            await super().subscribe(channel)
        except REDIS_ERRORS as exc:
            self.pending.add(channel)
            self.outage.failed(exc, doing="subscribing to live updates")
        else:
            self.pending.discard(channel)
            if asked:
                self.outage.succeeded()

    async def unsubscribe(self, channel):
        self.pending.discard(channel)
        asked = channel in self._subscribed_to  # else no round trip
        try:
            await super().unsubscribe(channel)
        except REDIS_ERRORS as exc:
            self.stale.add(channel)
            self.outage.failed(exc, doing="unsubscribing from live updates")
        else:
            self.stale.discard(channel)
            if asked:
                self.outage.succeeded()

    async def _repair(self) -> None:
        for channel in list(self.stale):
            await self.unsubscribe(channel)
            if channel in self.stale:
                return
        for channel in list(self.pending):
            await self.subscribe(channel)
            if channel in self.pending:
                return

    async def _do_receiving(self):
        """The upstream loop, quiet during outages and repairing subscriptions."""
        outage = self.outage
        while True:
            try:
                if (self.pending or self.stale) and outage.should_try():
                    await self._repair()
                if self._pubsub is not None and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(timeout=0.1)
                    # Only a reply proves Redis answers: a hung server keeps
                    # the socket open and quiet, like a quiet feed, and a
                    # message read now may have been sent before the outage
                    # began. So anything heard during one asks for a PING,
                    # and its PONG ends the outage.
                    if message is None:
                        continue
                    if message["type"] == "pong":
                        if outage.down:
                            outage.succeeded()
                    elif outage.down and self._pinged != outage.outages:
                        self._pinged = outage.outages  # once an outage
                        await self._pubsub.ping()
                    if message["type"] in ("message", "pmessage"):
                        self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (TimeoutError, asyncio.CancelledError, GeneratorExit):
                raise
            except REDIS_ERRORS as exc:
                self._pinged = None  # a new connection: ask again
                outage.failed(exc, doing="receiving live updates")
                await asyncio.sleep(outage.retry_every)
            except Exception as exc:  # as upstream: the receive task must live on
                receive_failures.error(
                    "receive", "unexpected exception in the receive task", exc=exc
                )
                await asyncio.sleep(1)


def _fast_serialize(layer):
    """The layer's `serialize`, or msgspec's msgpack encoder where that is
    all it does (msgpack, neither encrypted nor prefixed): the same bytes
    for the same message, in a third of the time (bench/PROFILE-ingest.md)."""
    serializer = layer._serializer
    if (
        type(serializer) is MsgPackSerializer
        and serializer.crypter is None
        and not serializer.random_prefix_length
    ):
        return msgspec.msgpack.Encoder().encode
    return layer.serialize


class ResilientLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        hosts = kwargs.get("hosts") or (args[0] if args else None)
        self._shards = [ResilientShard(host, self) for host in decode_hosts(hosts)]
        self._routes: dict[str, tuple[str, int]] = {}  # group -> channel, shard
        self._serialize = _fast_serialize(self.channel_layer)

    async def group_send_many(
        self, messages: list[tuple[str, dict]], store: dict[str, bytes] | None = None
    ) -> None:
        serialize, routes = self._serialize, self._routes
        by_shard: dict[int, list[tuple[str, bytes]]] = {}
        for group, message in messages:
            route = routes.get(group)
            if route is None:
                channel = self._get_group_channel_name(group)
                route = routes[group] = (channel, id(self._get_shard(channel)))
            channel, shard = route
            pairs = by_shard.get(shard)
            if pairs is None:
                pairs = by_shard[shard] = []
            pairs.append((channel, serialize(message)))
        if store:  # one Redis (the caller checked `stores_in`)
            (shard,) = self._shards
            await shard.publish_many(by_shard.get(id(shard), []), store)
            return
        shards = {id(shard): shard for shard in self._shards}
        for key, pairs in by_shard.items():
            await shards[key].publish_many(pairs)


class ResilientPubSubChannelLayer(RedisPubSubChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        hosts = kwargs.get("hosts") or (args[0] if args else None)
        self._urls = [_host_url(h) for h in decode_hosts(hosts)]
        self._outages = [redis_outage(url) for url in self._urls]

    def stores_in(self, url: str) -> bool:
        """Whether `group_send_many(..., store=…)` sets its keys in the Redis
        database at `url`: the layer is that one Redis, database included."""
        return [_database(u) for u in self._urls] == [_database(url)]

    @property
    def available(self) -> bool:
        """Whether every Redis of the layer answers, as far as this process
        knows (any process with a subscription notices within a second), and
        this event loop's subscriptions are all made: once True, messages
        published reach the process's channels and groups."""
        if any(outage.down for outage in self._outages):
            return False
        try:
            layer = self._layers.get(asyncio.get_running_loop())
        except RuntimeError:  # no loop: nothing subscribed from here
            return True
        return layer is None or not any(shard.pending for shard in layer._shards)

    async def group_send_many(
        self, messages: list[tuple[str, dict]], *, store: dict[str, bytes] | None = None
    ) -> None:
        """`group_send` for many (group, message) pairs: one script call per
        Redis. `store` (only where `stores_in` the caller's Redis): keys set
        in the same call, before the first message is published. Raises like
        `group_send` (nothing is retried beyond one reconnect: the caller
        decides)."""
        if messages or store:
            await self._get_layer().group_send_many(messages, store)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = ResilientLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer
