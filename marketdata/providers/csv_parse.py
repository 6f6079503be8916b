"""CSV cells to bar values: timestamps, and what storage can keep. Which
column holds what is `marketdata.providers.csv_layout`.

Timestamps: ISO-8601 dates or date-times (with or without offset), dotted
dates (`2024.01.02`), `YYYYMMDD`, epoch seconds/milliseconds/microseconds (by
magnitude), or a `date_format` for `strptime`. Naive values are local to the
caller's zone. A timestamp before 1970-01-01 or after tomorrow is a bad row.

Values: the bar table keeps numeric(20, 8) prices and VWAP, numeric(28, 8)
volume and an integer trade count. A value with more than 8 decimal places
(other than zeros) or beyond those ranges is a bad row rather than a value
silently rounded (0.000000001 would be stored as 0) or a database error.
One exception: a value printed with 15 or more significant digits is a binary
float written out in full (pandas writes 0.1 + 0.2 as 0.30000000000000004);
its digits past the 8th decimal are representation noise, not precision
anyone meant, so it is rounded to 8 places (half to even).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation
from typing import TYPE_CHECKING, Any

from marketdata.providers.base import InvalidRequestError
from marketdata.providers.timeparse import from_epoch_auto

if TYPE_CHECKING:
    from marketdata.providers.csv_layout import Layout

MAX_TRADES = 2**31 - 1  # integer column of the bar table
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_EIGHT_PLACES = Decimal("1e-8")
FLOAT_DIGITS = 15  # significant digits from which a value is a float printed in full
PRICES = ("open", "high", "low", "close")
_NUMERIC = re.compile(r"[+-]?\d+(\.\d+)?\Z")


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class CsvFormatError(InvalidRequestError):
    """The file cannot be loaded as it is. `bad_rows` lists the bad lines."""

    def __init__(
        self,
        message: str,
        *,
        bad_rows: list[BadRow] | tuple[BadRow, ...] = (),
        interval_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.bad_rows = list(bad_rows)
        #: the detected row spacing when that is what made the file unloadable
        self.interval_seconds = interval_seconds


# --- values -------------------------------------------------------------------------
def _storage_context(digits: int) -> Context:
    # Quantizing to 8 places in this context signals Inexact when digits past
    # the 8th would be dropped and InvalidOperation past numeric(digits, 8):
    # both checks in one call.
    return Context(prec=digits, traps=[InvalidOperation, Inexact])


PRICE = _storage_context(20)  # numeric(20, 8): prices, VWAP
VOLUME = _storage_context(28)  # numeric(28, 8)


def decimal_cell(text: str, name: str, *, storage: Context) -> Decimal:
    """A number storage keeps exactly, or ValueError saying why not."""
    try:
        value = Decimal(text)  # surrounding whitespace is allowed
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ValueError(f"bad {name} {text.strip()[:30]!r}")
    try:
        value.quantize(_EIGHT_PLACES, context=storage)
    except Inexact:
        if len(value.as_tuple().digits) >= FLOAT_DIGITS:
            return _float_rounded(value, text, name, storage)
        raise ValueError(
            f"{name} {text.strip()[:30]} has more than 8 decimal places (storage "
            f"keeps 8, so it would become {value.quantize(_EIGHT_PLACES):f}); "
            "round the file's values first"
        ) from None
    except InvalidOperation:
        limit = Decimal(10) ** (storage.prec - 8) - _EIGHT_PLACES
        raise ValueError(
            f"{name} {text.strip()[:30]} is out of range (storage holds at most "
            f"{limit})"
        ) from None
    return value


def _float_rounded(value: Decimal, text: str, name: str, storage: Context) -> Decimal:
    context = Context(prec=storage.prec, traps=[InvalidOperation])
    try:
        return value.quantize(_EIGHT_PLACES, rounding=ROUND_HALF_EVEN, context=context)
    except InvalidOperation:
        limit = Decimal(10) ** (storage.prec - 8) - _EIGHT_PLACES
        raise ValueError(
            f"{name} {text.strip()[:30]} is out of range (storage holds at most "
            f"{limit})"
        ) from None


def _trades_cell(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"bad trades {text[:30]!r}")
    count = int(text) if len(text) <= 10 else MAX_TRADES + 1
    if count > MAX_TRADES:
        raise ValueError(
            f"trades {text[:30]} is out of range (storage holds at most {MAX_TRADES})"
        )
    return count


def _check(row: dict[str, Any]) -> None:
    o, h, lo, c = row["open"], row["high"], row["low"], row["close"]
    if min(o, h, lo, c) <= 0:
        raise ValueError("prices must be positive")
    if h < max(o, c, lo) or lo > min(o, c):
        raise ValueError(f"high {h} / low {lo} do not contain open {o} and close {c}")
    volume = row.get("volume")
    if volume is not None and volume < 0:
        raise ValueError(f"negative volume {volume}")
    vwap = row.get("vwap")
    if vwap is not None and vwap < 0:
        raise ValueError(f"negative VWAP {vwap}")


class RowParser:
    """Turns one record of a layout into a row dict (`ts`, `date_only`,
    prices, optional volume/vwap/trade_count/ticker), or raises ValueError
    with the reason the row is bad."""

    def __init__(
        self,
        *,
        layout: Layout,
        tz: tzinfo,
        date_format: str | None,
        now: datetime | None = None,
    ) -> None:
        self.layout = layout
        self.tz = tz
        self.date_format = date_format
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        # Anything up to the end of tomorrow (UTC): a daily bar of an exchange
        # ahead of UTC may carry tomorrow's date.
        self.latest = datetime.combine(today + timedelta(days=2), time(), UTC)
        idx = layout.index
        self._prices = tuple((name, idx[name]) for name in PRICES)
        self._optional = tuple(
            (name, idx[name])
            for name in ("volume", "vwap", "trade_count")
            if name in idx
        )

    def parse(self, record: list[str]) -> dict[str, Any]:
        idx = self.layout.index
        raw_ts = record[idx["ts"]] if "ts" in idx else record[idx["date"]]
        time_value = record[idx["time"]] if "time" in idx else None
        try:
            ts, date_only = self.timestamp(raw_ts, time_value)
        except (ValueError, OverflowError, TypeError):
            raise ValueError(f"bad timestamp {self._shown(record)!r}") from None
        if ts < EARLIEST:
            raise ValueError(f"timestamp {self._shown(record)!r} is before 1970-01-01")
        if ts >= self.latest:
            raise ValueError(f"timestamp {self._shown(record)!r} is after tomorrow")
        row: dict[str, Any] = {"ts": ts, "date_only": date_only}
        for name, i in self._prices:
            row[name] = decimal_cell(record[i], name, storage=PRICE)
        for name, i in self._optional:
            text = record[i].strip()
            if not text:
                continue
            if name == "trade_count":
                row[name] = _trades_cell(text)
            else:
                storage = VOLUME if name == "volume" else PRICE
                row[name] = decimal_cell(text, name, storage=storage)
        _check(row)
        if self.layout.ticker_index is not None:
            row["ticker"] = record[self.layout.ticker_index].strip()[:40]
        return row

    def _shown(self, record: list[str]) -> str:
        idx = self.layout.index
        shown = record[idx["ts"]] if "ts" in idx else record[idx["date"]]
        if "time" in idx:
            shown = f"{shown} {record[idx['time']]}"
        return shown.strip()[:40]

    def local(self, naive: datetime) -> datetime:
        return naive.replace(tzinfo=self.tz).astimezone(UTC)

    def timestamp(self, value: str, time_value: str | None) -> tuple[datetime, bool]:
        """-> (UTC timestamp, date_only)."""
        value = value.strip()
        if time_value is not None:
            time_value = time_value.strip()
            if len(time_value) == 6 and time_value.isdigit():  # Stooq HHMMSS
                time_value = f"{time_value[:2]}:{time_value[2:4]}:{time_value[4:]}"
            day, _ = self.timestamp(value, None)
            local_day = day.astimezone(self.tz).date()
            clock = time.fromisoformat(time_value)
            return self.local(datetime.combine(local_day, clock)), False
        if self.date_format:
            parsed = datetime.strptime(value, self.date_format)
            date_only = not any(c in self.date_format for c in "HIMSf")
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC), date_only
            return self.local(parsed), date_only
        if value[4:5] == "." and value[7:8] == ".":  # MetaTrader 2024.01.02
            value = value[:10].replace(".", "-") + value[10:]
        if len(value) == 8 and value.isdigit():  # YYYYMMDD
            day = date(int(value[:4]), int(value[4:6]), int(value[6:]))
            return self.local(datetime.combine(day, time())), True
        if _NUMERIC.match(value):
            number = float(value) if "." in value else int(value)
            return from_epoch_auto(number), False
        if len(value) == 10:
            day = date.fromisoformat(value.replace("/", "-"))
            return self.local(datetime.combine(day, time())), True
        parsed = datetime.fromisoformat(
            value.replace("/", "-", 2) if value[4:5] == "/" else value
        )
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC), False
        return self.local(parsed), False
