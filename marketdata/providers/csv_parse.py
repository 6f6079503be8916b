"""CSV cells to bar values: layouts, timestamps, and what storage can keep.

Layouts (header names are matched case-insensitively):
- Yahoo: `Date,Open,High,Low,Close,Adj Close,Volume` (`Close` is used: raw,
  not adjusted, like the other providers' `adjustment=raw`).
- Stooq: `Date,Open,High,Low,Close[,Volume]`, and the
  `<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>`
  export (DATE `YYYYMMDD`, TIME `HHMMSS`).
- Generic: a time column (`time`, `timestamp`, `datetime`, `date`, `open_time`,
  or separate `date` + `time`) and `open/high/low/close[/volume][/vwap]
  [/trades]` in any order (TradingView, Binance dumps with a header,
  MetaTrader 5 `<DATE>\\t<TIME>\\t<OPEN>...` exports); or an explicit
  `columns` mapping for anything else.
- Without a header: Binance kline dumps (12 columns, open time in epoch ms or
  µs) and MetaTrader 4 history exports (`2024.01.02,09:30,O,H,L,C,V`).

Timestamps: ISO-8601 dates or date-times (with or without offset), dotted
dates (`2024.01.02`), `YYYYMMDD`, epoch seconds/milliseconds/microseconds (by
magnitude), or a `date_format` for `strptime`. Naive values are local to the
caller's zone. A timestamp before 1970-01-01 or after tomorrow is a bad row.

Values: the bar table keeps numeric(20, 8) prices and VWAP, numeric(28, 8)
volume and an integer trade count. A value with more than 8 decimal places
(other than zeros) or beyond those ranges is a bad row rather than a value
silently rounded (0.000000001 would be stored as 0) or a database error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any

from marketdata.providers.base import InvalidRequestError
from marketdata.providers.timeparse import from_epoch_auto

FIELDS = (
    "ts",
    "date",
    "time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trade_count",
)
ALIASES = {
    "ts": ("timestamp", "datetime", "date_time", "time_stamp", "open_time", "t"),
    "date": ("date", "day"),
    "time": ("time",),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "last"),
    "volume": ("volume", "vol", "v"),
    "vwap": ("vwap", "vw"),
    "trade_count": (
        "trades",
        "trade_count",
        "n",
        "count",
        "number_of_trades",
        "num_trades",
    ),
}
MAX_TRADES = 2**31 - 1  # integer column of the bar table
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_EIGHT_PLACES = Decimal("1e-8")
PRICES = ("open", "high", "low", "close")
_NUMERIC = re.compile(r"[+-]?\d+(\.\d+)?\Z")
_DOTTED_DATE = re.compile(r"\d{4}\.\d{2}\.\d{2}\Z")
_CLOCK = re.compile(r"\d{1,2}:\d{2}(:\d{2})?\Z")


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


# --- layouts ------------------------------------------------------------------------
@dataclass
class Layout:
    name: str
    index: dict[str, int]
    width: int
    ticker_index: int | None = None
    headerless: bool = False  # the first line is data (line 1)


def _norm(name: str) -> str:
    name = name.strip().strip("\ufeff").strip("<>").strip().lower()
    return re.sub(r"[\s\-]+", "_", name)


def _headerless_layout(cells: list[str]) -> Layout | None:
    cells = [cell.strip() for cell in cells]
    first = cells[0] if cells else ""
    if len(cells) == 12 and first.isdigit() and len(first) in (13, 16):
        # open_time, open, high, low, close, volume, close_time, quote_volume,
        # count, taker_buy_volume, taker_buy_quote_volume, ignore
        index = {"ts": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
        return Layout("binance", {**index, "trade_count": 8}, 12, headerless=True)
    if len(cells) in (6, 7) and _DOTTED_DATE.match(first) and _CLOCK.match(cells[1]):
        index = {"date": 0, "time": 1, "open": 2, "high": 3, "low": 4, "close": 5}
        if len(cells) == 7:
            index["volume"] = 6
        return Layout("metatrader", index, len(cells), headerless=True)
    return None


def detect_layout(header: list[str], columns: Mapping[str, str] | None) -> Layout:
    """The layout of a file whose first line is `header`."""
    if not columns:
        headerless = _headerless_layout(header)
        if headerless is not None:
            return headerless
    names = [_norm(h) for h in header]
    position = {name: i for i, name in reversed(list(enumerate(names)))}
    index: dict[str, int] = {}
    if columns:
        unknown = set(columns) - set(FIELDS)
        if unknown:
            raise CsvFormatError(
                f"unknown field(s) in column mapping: {', '.join(sorted(unknown))}; "
                f"fields are {', '.join(FIELDS)}"
            )
        for fieldname, column in columns.items():
            key = _norm(column)
            if key not in position:
                raise CsvFormatError(
                    f"mapped column {column!r} for {fieldname} is not in the header "
                    f"({', '.join(header)})"
                )
            index[fieldname] = position[key]
        layout = "mapped"
    else:
        for fieldname, aliases in ALIASES.items():
            for alias in aliases:
                if alias in position:
                    index[fieldname] = position[alias]
                    break
        if "ts" not in index and "date" in index and "time" not in index:
            index["ts"] = index.pop("date")
        if "ts" not in index and "time" in index and "date" not in index:
            index["ts"] = index.pop("time")
        if "ticker" in position and "per" in position:
            layout = "stooq-ticker"
        elif "adj_close" in position:
            layout = "yahoo"
        elif names[:5] == ["date", "open", "high", "low", "close"] and len(names) <= 7:
            layout = "stooq"
        else:
            layout = "generic"
    if "ts" in index and "date" in index and "time" not in index:
        index.pop("date")
    has_time = "ts" in index or "date" in index
    missing = [f for f in ("open", "high", "low", "close") if f not in index]
    if not has_time:
        missing.insert(0, "time/date")
    if missing:
        shown = ", ".join(header)
        raise CsvFormatError(
            f"cannot find column(s) {', '.join(missing)} in header "
            f"({shown[:300]}); pass an explicit column mapping"
        )
    return Layout(
        name=layout,
        index=index,
        width=len(header),
        ticker_index=position.get("ticker"),
    )


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
