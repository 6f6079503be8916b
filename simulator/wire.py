"""Frame and response helpers every protocol module shares, and the
application key under which handlers find the running simulator."""

from __future__ import annotations

import orjson
from aiohttp import web

from simulator.state import ExchangeState

#: the application key holding the running simulator (a `state.ExchangeState`)
SIM: web.AppKey[ExchangeState] = web.AppKey("simulator", ExchangeState)


def json_frame(fragments: list[bytes]) -> bytes:
    """A JSON array of already-encoded JSON values."""
    return b"[" + b",".join(fragments) + b"]"


def msgpack_frame(fragments: list[bytes]) -> bytes:
    """A msgpack array of already-packed values."""
    count = len(fragments)
    if count < 16:
        header = bytes([0x90 | count])
    elif count < 65536:
        header = b"\xdc" + count.to_bytes(2, "big")
    else:
        header = b"\xdd" + count.to_bytes(4, "big")
    return header + b"".join(fragments)


def json_response(
    payload: object, status: int = 200, headers: dict | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )
