"""A live session's frames are read on the worker's event loop
(`FeedConnection._readable`), over plain TCP and over TLS as the real
providers serve them: a frame that arrives a byte at a time waits in
websocket-client's buffer while the loop goes on, a server's ping gets its
pong, each frame's events reach the sink once and in order on the loop's
own thread, and a server's close hands the session back to the
connection's thread (a real socket, frames made by hand)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from streaming.backoff import Backoff
from streaming.connection import FeedConnection, Lifecycle

from .test_read_ahead import frame, handshake

FIRST = [b"one", b"two", b"three"]
TRICKLED = bytes(range(256)) * 2  # a 512-byte binary frame, a byte a write


class Echo:
    """A provider whose frames are their own events: no auth, and no
    symbols (nothing to subscribe)."""

    name = "echo"

    def __init__(self, url: str) -> None:
        self.url = url

    def stream_url(self, *, asset_class, symbols=()):
        return self.url

    def stream_headers(self):
        return []

    def auth_messages(self):
        return []

    def handshake_events(self):
        return []

    def parse_feed(self, data):
        return [Payload(data, threading.get_ident())]


class Payload:
    kind = "payload"

    def __init__(self, data, thread: int) -> None:
        self.data, self.thread = data, thread


def read_exactly(conn, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += conn.recv(size - len(data))
    return data


def read_client_frame(conn) -> tuple[int, bytes]:
    """One masked frame from the client (small: a pong or a close)."""
    head = read_exactly(conn, 2)
    mask = read_exactly(conn, 4)
    payload = read_exactly(conn, head[1] & 0x7F)
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def serve(listener, context, seen: dict) -> None:
    raw, _ = listener.accept()
    conn = context.wrap_socket(raw, server_side=True) if context else raw
    with conn:
        handshake(conn, b"".join(frame(0x2, p) for p in FIRST))
        time.sleep(0.2)  # the loop has read them and waits
        seen["trickle_started"] = time.monotonic()
        for byte in frame(0x2, TRICKLED):
            conn.sendall(bytes([byte]))
            time.sleep(0.002)
        seen["trickle_ended"] = time.monotonic()
        conn.sendall(frame(0x9, b"are you there"))
        seen["pong"] = read_client_frame(conn)
        conn.sendall(frame(0x8, struct.pack("!H", 1000)))
        seen["close"] = read_client_frame(conn)[0]


@pytest.fixture
def tls_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def run_session(url: str) -> tuple[FeedConnection, list, list]:
    loop, loop_thread = asyncio.get_running_loop(), threading.get_ident()
    sunk, ticks = [], []

    def sink(connection, received_at, events):
        sunk.append((threading.get_ident(), received_at, events))

    connection = FeedConnection(
        key="echo:equity", provider=Echo(url), asset_class="equity", sink=sink,
        backoff=Backoff(base=30.0, cap=30.0, reset_after=60.0),
    )  # fmt: skip
    connection.start(loop)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ticks.append(time.monotonic())  # the loop's other work
        if any(
            isinstance(e, Lifecycle) and e.state == "down"
            for *_, es in sunk
            for e in es
        ):
            break
        await asyncio.sleep(0.005)
    connection.stop()
    assert all(thread in (loop_thread, connection._thread.ident) for thread, *_ in sunk)
    return connection, sunk, ticks


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_the_loop_reads_a_session_that_arrives_in_pieces(tls, request, monkeypatch):
    context = None
    if tls:
        cert, key = request.getfixturevalue("tls_files")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(cert))
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict = {}
    server = threading.Thread(target=serve, args=(listener, context, seen), daemon=True)
    server.start()
    scheme = "wss" if tls else "ws"
    url = f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/stream"
    try:
        connection, sunk, ticks = asyncio.run(run_session(url))
    finally:
        listener.close()
        server.join(5)

    payloads = [e for *_, events in sunk for e in events if isinstance(e, Payload)]
    assert [p.data for p in payloads] == [*FIRST, TRICKLED]  # each once, in order
    loop_threads = {p.thread for p in payloads}
    assert len(loop_threads) == 1 and loop_threads != {connection._thread.ident}
    lifecycle = [
        e.state for *_, events in sunk for e in events if isinstance(e, Lifecycle)
    ]
    assert lifecycle == ["up", "down"]
    assert seen["pong"] == (0xA, b"are you there")  # answered from the loop
    assert seen["close"] == 0x8
    assert connection.last_error == "closed by the server"
    assert connection.stats.frames == 4
    # The loop went on while the trickled frame was partial.
    during = [t for t in ticks if seen["trickle_started"] < t < seen["trickle_ended"]]
    assert during, "the loop waited for the frame's last byte"
