"""Server-side display of snapshot documents: the first render of every table
uses these, and `static/js/format.js` formats the live updates the same way."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cached_property

from django.conf import settings

from marketdata.models import Instrument
from preferences.display import exchange_zone


def to_decimal(value) -> Decimal | None:
    """A finite Decimal from decimal text or a number (a float by its shortest
    repr, as format.js reads a JavaScript number), else None."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def half_even(number: Decimal, places: int) -> Decimal:
    """`number` rounded half to even at `places` decimals, on its decimal
    digits: the one rounding rule of the server and `static/js/format.js`
    (tests/fixtures/rounding.json is the table both are tested on)."""
    return number.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)


def fmt_price(value, decimals: int) -> str:
    number = to_decimal(value)
    if number is None:
        return "—"
    return f"{half_even(number, decimals):,f}"


def fmt_signed(value, decimals: int) -> str:
    number = to_decimal(value)
    if number is None:
        return "—"
    return f"{half_even(number, decimals):+,f}"


def fmt_pct(value) -> str:
    number = to_decimal(value)
    if number is None:
        return "—"
    return f"{half_even(number, 2):+f}%"


def fmt_spread(bid, ask, decimals: int) -> str:
    """`ask - bid`, computed on the decimal values (format.js `difference`)."""
    bid, ask = to_decimal(bid), to_decimal(ask)
    return "—" if bid is None or ask is None else fmt_price(ask - bid, decimals)


def fmt_compact(value) -> str:
    """Volumes: 950, 12.35K, 1.20M, 3.40B (same rule as format.js)."""
    number = to_decimal(value)
    if number is None:
        return "—"
    magnitude = abs(number)
    for threshold, shift, suffix in ((10**9, 9, "B"), (10**6, 6, "M"), (10**4, 3, "K")):
        if magnitude >= threshold:
            return f"{half_even(number.scaleb(-shift), 2):f}{suffix}"
    places = 0 if number == number.to_integral_value() else 2
    return f"{half_even(number, places):f}"


def fmt_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def direction(value) -> str:
    number = to_decimal(value)
    if number is None or number == 0:
        return "flat"
    return "up" if number > 0 else "down"


def sparkline_svg(points: list[float], *, width: int = 100, height: int = 24) -> str:
    """The polyline the client redraws (same geometry as format.js)."""
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - (p - low) / span * (height - 2) - 1:.1f}"
        for i, p in enumerate(points)
    )
    return coords


def stored_snapshot(*, symbol: str, ts, close) -> dict:
    """A snapshot document from the newest stored minute bar (`ts`, `close`),
    shown when the live snapshots are out of reach: `stale`, aged from the
    minute's end, without quote or session fields."""
    return {
        "symbol": symbol,
        "seq": 0,
        "ts": ts.isoformat(),
        "received_at": ts.timestamp() + 60,
        "provider": "stored",
        "last": str(close),
        "freshness": "stale",
        "minute": None,
    }


@dataclass
class QuoteRow:
    instrument: Instrument
    snapshot: dict | None
    sparkline: dict = field(default_factory=dict)

    def __getitem__(self, name: str):
        # Templates try `row[name]` before `row.name`: answering it spares a
        # raised and caught TypeError per variable (50 rows x ~50 variables).
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def decimals(self) -> int:
        return self.instrument.price_decimals

    def _get(self, key):
        return (self.snapshot or {}).get(key)

    def price(self, key: str) -> str:
        return fmt_price(self._get(key), self.decimals)

    @property
    def last(self) -> str:
        return self.price("last")

    @property
    def bid(self) -> str:
        return self.price("bid")

    @property
    def ask(self) -> str:
        return self.price("ask")

    @property
    def high(self) -> str:
        return self.price("high")

    @property
    def low(self) -> str:
        return self.price("low")

    @property
    def open(self) -> str:
        return self.price("open")

    @property
    def prev_close(self) -> str:
        return self.price("prev_close")

    @property
    def spread(self) -> str:
        return fmt_spread(self._get("bid"), self._get("ask"), self.decimals)

    @property
    def change(self) -> str:
        return fmt_signed(self._get("change"), self.decimals)

    @property
    def change_pct(self) -> str:
        return fmt_pct(self._get("change_pct"))

    @cached_property
    def direction(self) -> str:
        return direction(self._get("change"))

    @property
    def volume(self) -> str:
        return fmt_compact(self._get("volume"))

    @property
    def seq(self) -> int:
        return int(self._get("seq") or 0)

    @cached_property
    def received_at(self) -> float:
        return float(self._get("received_at") or 0)

    @property
    def updated_at(self) -> datetime | None:
        """When the snapshot was received (shown in the display zone)."""
        if not self.received_at:
            return None
        return datetime.fromtimestamp(self.received_at, UTC)

    @cached_property
    def exchange_zone(self) -> str:
        return exchange_zone(self.instrument)

    @property
    def age(self) -> str:
        if not self.received_at:
            return "no data yet"
        return fmt_age(time.time() - self.received_at)

    @cached_property
    def freshness(self) -> str:
        state = self._get("freshness") or "waiting"
        if (
            state == "live"
            and time.time() - self.received_at > settings.STREAM_STALE_AFTER
        ):
            return "stale"  # the worker stopped updating this snapshot
        return state

    @property
    def freshness_label(self) -> str:
        from streaming.freshness import LABELS

        return LABELS.get(self.freshness, self.freshness)

    @property
    def minute_ts(self) -> str:
        minute = self._get("minute") or {}
        return minute.get("ts") or ""

    @property
    def spark_points(self) -> str:
        return sparkline_svg(self.sparkline.get("points") or [])

    @property
    def spark_data(self) -> str:
        return json.dumps(self.sparkline or {})
