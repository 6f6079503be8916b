"""A private Redis server a test may kill, for Redis-outage tests.

The shared Redis (6379) is never stopped: `private_redis` starts
`redis-server` on a free loopback port (no persistence, so a restart comes
back empty, like a real restart without RDB/AOF), and always stops it.
`private_redis.stop()` is the outage, `private_redis.start()` the return;
`freeze()` and `thaw()` hang it and let it go.

`redis_outage_settings` points what this process reads from settings at it:
`REDIS_URL` (snapshots, health, rule changes), the cache and the channel layer
(pub/sub ignores database numbers, so only a private port isolates it). The
Dramatiq broker is built once at start-up and stays on the shared Redis; a
subprocess given `REDIS_URL=private.url()` uses the private one for all.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis

from tests.plugins.simulator import free_port


class PrivateRedis:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server on port {self.port} did not start"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server (SIGKILL: no goodbye to its clients, like a crash)
        and wait until the port refuses connections."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def freeze(self) -> None:
        """Hang the server (SIGSTOP): its sockets stay open, nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_outage_settings(private_redis, settings):
    """Settings pointing every Redis user of this process at `private_redis`."""
    from core.redis import redis_client

    url = private_redis.url(0)
    settings.REDIS_URL = url
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": url},
    }
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {
                **settings.CHANNEL_LAYERS["default"]["CONFIG"],
                "hosts": [url],
            },
        }
    }
    redis_client.cache_clear()
    yield private_redis
    redis_client.cache_clear()
