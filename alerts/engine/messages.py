"""What the engine emits (`FiredAlert`) and how a fire becomes one: the
kind's `message` (alerts.kinds) gets a `Fire` with what it may show."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from alerts.kinds import kind_get


@dataclass(frozen=True, slots=True)
class FiredAlert:
    """One rule firing on one event. Plain data; `values` is JSON-safe."""

    rule_id: int
    owner_id: int
    instrument_id: int | None
    symbol: str
    kind: str
    direction: str
    level: float | None
    ts: datetime
    price: Decimal | None
    value: float
    previous: float
    values: dict
    message: str
    note: str = ""
    notify_email: bool = False
    one_shot: bool = False
    #: set when queued for recording: an idempotency key and the wall time
    key: str = ""
    fired_at: datetime | None = None


@dataclass(slots=True)
class Fire:
    """What a kind's `message` may read about one fire."""

    rule: object
    symbol: str
    value: float
    previous: float | None
    price_text: str = "?"
    prev_close: float | None = None
    volume: float = 0.0
    average: float | None = None
    #: pattern Detection, Anomaly, or the met conditions of a multi rule
    event: object = None


@dataclass(slots=True)
class MetCondition:
    """A multi rule's condition as its alert reports it."""

    text: str
    values: dict


def fired_build(
    *,
    rule,
    fire: Fire,
    ts: datetime,
    instrument_id: int | None,
    price: Decimal | None,
) -> FiredAlert:
    kind = kind_get(rule.kind)
    message, extra = kind.message(fire)
    level = kind.level_of(rule)
    values: dict = {"value": fire.value, "previous": fire.previous, "level": rule.level}
    values.update(extra)
    return FiredAlert(
        rule_id=rule.id,
        owner_id=rule.owner_id,
        instrument_id=instrument_id or None,
        symbol=fire.symbol,
        kind=rule.kind,
        direction=rule.direction,
        level=level,
        ts=ts,
        price=price,
        value=fire.value,
        previous=fire.previous if fire.previous is not None else fire.value,
        values={k: json_safe(v) for k, v in values.items()},
        message=message,
        note=rule.note,
        notify_email=rule.notify_email,
        one_shot=rule.one_shot,
    )


def price_text(price: Decimal | None) -> str:
    return format(price.normalize(), "f") if price is not None else "?"


def json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value
