"""`--print-events`: one JSON line per normalized event, for debugging a feed."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from decimal import Decimal

import orjson


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot serialize {type(value).__name__}")


def event_json(event, *, connection: str = "") -> bytes:
    """`{"kind": "trade", "symbol": "AAPL", "ts": "...", "price": "189.2", ...}`"""
    document = {"kind": event.kind}
    if connection:
        document["connection"] = connection
    for name in event.__struct_fields__:  # marketdata.events: msgspec structs
        document[name] = getattr(event, name)
    return orjson.dumps(document, default=_default, option=orjson.OPT_APPEND_NEWLINE)


def event_printer(stdout=None) -> Callable[[bytes], object]:
    """What writes `event_json` lines to `stdout` (default `sys.stdout`):
    bytes go to its binary buffer when it has one, text otherwise."""
    out = stdout or sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        return buffer.write
    return lambda data: out.write(data.decode())
