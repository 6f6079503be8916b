"""Frames read ahead (`streaming.connection.read_ahead`): a socket read may
now return several frames, or part of one, and every frame must still come
out whole, in order (a real socket, frames made by hand)."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
import time

import websocket

from streaming.loop_reading import READ_AHEAD, read_ahead

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def handshake(conn, first: bytes = b"") -> None:
    """Answer a client's WebSocket upgrade on `conn`; `first` goes out in
    the same write as the answer."""
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(4096)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        + first
    )  # fmt: skip


def serve(listener: socket.socket, payloads: list[bytes], trickled: bytes) -> None:
    conn, _ = listener.accept()
    with conn:
        # the first frames in the same write as the handshake's answer
        handshake(conn, b"".join(frame(0x2, p) for p in payloads))
        for byte in frame(0x1, trickled):  # one byte a write
            conn.sendall(bytes([byte]))
            time.sleep(0.001)
        conn.sendall(frame(0x8, struct.pack("!H", 1000)))
        time.sleep(0.5)


def test_frames_come_out_whole_however_the_socket_cuts_them():
    sizes = [0, 1, 125, 126, 127, 65535, 65536, READ_AHEAD + 7, 3 * READ_AHEAD, 10]
    small = [bytes([n % 256]) * 100 for n in range(200)]  # 20 KB in one write
    payloads = small + [bytes((n + i) % 251 for i in range(n)) for n in sizes] * 3
    trickled = "é, a text frame sent a byte at a time".encode()
    listener = socket.create_server(("127.0.0.1", 0))
    server = threading.Thread(
        target=serve, args=(listener, payloads, trickled), daemon=True
    )
    server.start()
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{listener.getsockname()[1]}/", timeout=10
    )
    reads = []
    recv = ws._recv
    ws._recv = lambda wanted: reads.append(wanted) or recv(wanted)
    read_ahead(ws)
    try:
        got = [ws.recv_data(control_frame=True) for _ in small]
        reads_for_small = len(reads)
        got += [ws.recv_data(control_frame=True) for _ in range(len(payloads) - 198)]
    finally:
        ws.close(timeout=0.1)
        listener.close()
    assert [data for _, data in got[: len(payloads)]] == payloads
    assert got[len(payloads)] == (websocket.ABNF.OPCODE_TEXT, trickled)
    assert got[-1][0] == websocket.ABNF.OPCODE_CLOSE
    # many frames a read, not several reads a frame
    assert 0 < reads_for_small <= 5
