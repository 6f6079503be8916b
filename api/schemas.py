"""Request and response bodies of the token API (pydantic, via django-ninja).
The OpenAPI schema at /api/openapi.json is generated from these."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from decimal import Decimal

from ninja import Field, Schema

from alerts.models import AlertTimeframe, Direction, MovingAverage, RuleKind
from marketdata.models import TransactionKind


class Error(Schema):
    error: str
    fields: dict[str, list[str]] | None = None


class InstrumentOut(Schema):
    symbol: str
    name: str
    asset_class: str
    exchange: str
    currency: str
    price_increment: Decimal
    active: bool


class BarOut(Schema):
    t: int = Field(description="Bar start, epoch seconds (UTC).")
    o: float
    h: float
    l: float  # noqa: E741 (the chart's own short name)
    c: float
    v: float


class BarsOut(Schema):
    symbol: str
    timeframe: str
    bars: list[BarOut]
    next_before: int | None = Field(
        description="`t` of the oldest bar when older bars exist: pass it as `end`."
    )
    indicators: dict[str, dict[str, list[float | None]]] | None = None


class PatternPointOut(Schema):
    t: int
    price: float
    role: str


class LinePointOut(Schema):
    t: int
    price: float


class PatternLineOut(Schema):
    role: str = Field(description="neckline, level, trendline, upper, lower or pole")
    points: list[LinePointOut]


class DetectionOut(Schema):
    kind: str
    label: str
    direction: str = Field(description="bullish, bearish or neutral")
    t: int = Field(description="Start of the confirming bar, epoch seconds.")
    confidence: float
    explain: str
    points: list[PatternPointOut]
    lines: list[PatternLineOut]


class PatternsOut(Schema):
    symbol: str
    timeframe: str
    bars: int = Field(description="Bars looked at (older ones only warm up).")
    kinds: dict[str, str]
    message: str | None = Field(description="Why nothing was looked at, if so.")
    detections: list[DetectionOut]


class ItemOut(Schema):
    symbol: str = Field(alias="instrument.symbol")
    name: str = Field(alias="instrument.name")
    position: int
    added_at: datetime


class WatchlistOut(Schema):
    id: int
    name: str
    position: int
    created_at: datetime
    items: list[ItemOut]

    @staticmethod
    def resolve_items(obj) -> list:
        return list(obj.items.all())


class WatchlistIn(Schema):
    name: str
    symbols: list[str] = Field(default_factory=list)


class WatchlistPatch(Schema):
    name: str | None = None
    order: list[str] | None = Field(
        default=None, description="Symbols in the wanted order; others follow."
    )


class ItemIn(Schema):
    symbol: str


class PositionOut(Schema):
    """A position folded from its transactions and valued at the last price
    (the figures the portfolio page shows; null without a price)."""

    id: int
    symbol: str = Field(alias="instrument.symbol")
    quantity: Decimal
    average_cost: Decimal
    cost_basis: Decimal
    realized_pl: Decimal
    opened_at: datetime
    last: Decimal | None = None
    value: Decimal | None = None
    unrealized_pl: Decimal | None = None
    day_pl: Decimal | None = None
    total_pl: Decimal | None = None
    return_pct: Decimal | None = Field(
        default=None, description="Total P/L as % of all bought."
    )
    weight: Decimal | None = Field(
        default=None, description="% of the value of all open positions."
    )


class TransactionIn(Schema):
    """A buy or sell (quantity > 0, price, optional fee) or a stand-alone fee
    (fee only). `date` defaults to today."""

    kind: TransactionKind
    date: dt.date | None = None
    quantity: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    note: str = Field(default="", max_length=200)


class PositionIn(Schema):
    """Opens a position with its first buy."""

    symbol: str
    date: dt.date | None = None
    quantity: Decimal
    price: Decimal
    fee: Decimal = Decimal(0)
    note: str = Field(default="", max_length=200)


class TransactionPatch(Schema):
    """Fields left out keep their current value."""

    kind: TransactionKind | None = None
    date: dt.date | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    fee: Decimal | None = None
    note: str | None = Field(default=None, max_length=200)


class TransactionOut(Schema):
    id: int
    position_id: int
    symbol: str = Field(alias="position.instrument.symbol")
    kind: str
    date: dt.date
    quantity: Decimal
    price: Decimal
    fee: Decimal
    note: str
    created_at: datetime


class CloseIn(Schema):
    """Sell everything held at `price`; `date` defaults to today."""

    date: dt.date | None = None
    price: Decimal
    fee: Decimal = Decimal(0)
    note: str = Field(default="", max_length=200)


class ImportIn(Schema):
    csv: str = Field(
        description="The file's text: date,symbol,type,quantity,price,fee,note."
    )
    skip_bad: bool = Field(
        default=False, description="Import the good lines even when some are bad."
    )


class BadLine(Schema):
    line: int
    error: str


class ImportOut(Schema):
    imported: int
    positions: list[str]
    skipped: list[BadLine]


class RuleIn(Schema):
    """Rule fields; the same checks as the alert form apply (per kind)."""

    symbol: str | None = None
    kind: RuleKind | None = None
    direction: Direction | None = None
    level: Decimal | None = None
    hysteresis: Decimal | None = None
    timeframe: AlertTimeframe | None = None
    period: int | None = None
    fast_period: int | None = None
    slow_period: int | None = None
    ma_type: MovingAverage | None = None
    cooldown_seconds: int | None = None
    one_shot: bool | None = None
    active: bool | None = None
    notify_email: bool | None = None
    note: str | None = None


class RuleOut(Schema):
    id: int
    symbol: str = Field(alias="instrument.symbol")
    kind: str
    direction: str
    level: Decimal | None
    hysteresis: Decimal
    timeframe: str
    period: int | None
    fast_period: int | None
    slow_period: int | None
    ma_type: str
    cooldown_seconds: int
    one_shot: bool
    active: bool
    notify_email: bool
    note: str
    description: str
    last_fired_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_description(obj) -> str:
        return obj.describe()


class DryRunIn(Schema):
    days: int = Field(default=5, ge=1, le=30)


class DryRunRuleIn(RuleIn):
    days: int = Field(default=5, ge=1, le=30)


class FiredOut(Schema):
    ts: datetime
    price: Decimal | None
    value: float
    message: str


class DryRunOut(Schema):
    days: int
    start: datetime
    end: datetime
    bars: int
    warmup_bars: int
    first_bar: datetime | None
    last_bar: datetime | None
    fired: list[FiredOut]


class EventOut(Schema):
    id: int
    rule_id: int | None
    symbol: str = Field(alias="instrument.symbol")
    kind: str
    ts: datetime
    price: Decimal | None
    values: dict
    message: str
    note: str
    seen: bool
    created_at: datetime

    @staticmethod
    def resolve_seen(obj) -> bool:
        return obj.seen_at is not None


class SeenIn(Schema):
    ids: list[int] | None = Field(
        default=None, description="Alert ids to mark seen; omit for all."
    )


class SeenOut(Schema):
    marked: int
