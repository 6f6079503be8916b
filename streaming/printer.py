"""`--print-events`: one JSON line per normalized event, for debugging a feed."""

from __future__ import annotations

import enum
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
