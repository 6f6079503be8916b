"""History from CSV files: Yahoo, Stooq and generic OHLCV layouts.

Detected layouts (header names are matched case-insensitively):
- Yahoo: `Date,Open,High,Low,Close,Adj Close,Volume` (`Close` is used: raw,
  not adjusted, like the other providers' `adjustment=raw`).
- Stooq: `Date,Open,High,Low,Close[,Volume]`, and the
  `<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>`
  export (DATE `YYYYMMDD`, TIME `HHMMSS`).
- Generic: a time column (`time`, `timestamp`, `datetime`, `date`, or separate
  `date` + `time`) and `open/high/low/close[/volume][/vwap][/trades]` in any
  order; or an explicit `columns` mapping for anything else.

Timestamps: ISO-8601 dates or date-times (with or without offset), `YYYYMMDD`,
epoch seconds/milliseconds/microseconds (by magnitude), or a `date_format`
for `strptime`. Naive values are local to `timezone` (default
America/New_York, where Alpaca also stamps daily bars: midnight New York);
pass "UTC" for files in UTC. Epoch numbers and values with an offset are
absolute.

The bar interval is detected from the data: 1 day (date-only rows, or rows a
day apart), 1 hour or 1 minute (the most common spacing between rows, so
overnight and weekend gaps do not matter). Tapeline stores 1-minute, hourly
and daily bars and never invents finer data from coarser, so other intervals
(5-minute, 4-hour) are rejected with a clear error naming the spacing instead
of being stored under the wrong timeframe. A caller that knows the timeframe
passes `timeframe`: it must match the detected one, and it decides when the
file has a single timed row (no spacing to measure). Timestamps are bar
starts and are kept as given: equity hourly exports stamped at :30 (09:30,
10:30, ...) stay at :30. Hourly rows less than an hour apart would overlap,
so such a row is a bad row.

Every bad row is reported with its line number (the header is line 1). By
default a file with any bad row loads nothing (`CsvFormatError` lists every
bad line); with `skip_bad=True` the good rows load and the summary lists the
bad ones. The file is read twice (validate, then yield pages), so memory
stays flat for large files.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marketdata.events import BarEvent, Control, ControlType, Event
from marketdata.providers.base import InvalidRequestError, Provider, ProviderError
from marketdata.providers.timeparse import from_epoch_auto

DEFAULT_TIMEZONE = "America/New_York"
PAGE_SIZE = 5000
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
TIMEFRAMES = {60: "1m", 3_600: "1h", 86_400: "1d"}
INTERVALS = {timeframe: seconds for seconds, timeframe in TIMEFRAMES.items()}
_DAY_DIFFS = frozenset({82_800, 86_400, 90_000})  # 23/24/25 h across DST changes
_NUMERIC = re.compile(r"[+-]?\d+(\.\d+)?\Z")


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class CsvSummary:
    """What a file held: its layout, interval, row counts and bad rows."""

    path: str
    layout: str
    timeframe: str | None = None
    interval_seconds: int | None = None
    rows: int = 0
    good_rows: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    tickers: tuple[str, ...] = ()

    def describe(self) -> str:
        text = (
            f"{self.path}: {self.layout} layout, {self.timeframe or '?'} bars, "
            f"{self.good_rows} of {self.rows} rows good"
        )
        if self.first_ts and self.last_ts:
            text += f" ({self.first_ts.isoformat()} .. {self.last_ts.isoformat()})"
        if self.bad_rows:
            text += f"; {len(self.bad_rows)} bad: " + "; ".join(map(str, self.bad_rows))
        return text


class CsvFormatError(InvalidRequestError):
    """The file cannot be loaded as it is. `bad_rows` lists every bad line."""

    def __init__(
        self,
        message: str,
        *,
        bad_rows: Iterable[BadRow] = (),
        interval_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.bad_rows = list(bad_rows)
        #: the detected row spacing when that is what made the file unloadable
        self.interval_seconds = interval_seconds


def _norm(name: str) -> str:
    name = name.strip().strip("\ufeff").strip("<>").strip().lower()
    return re.sub(r"[\s\-]+", "_", name)


@dataclass
class _Layout:
    name: str
    index: dict[str, int]
    width: int
    ticker_index: int | None = None
    compact_date: bool = False  # Stooq <DATE> YYYYMMDD + <TIME> HHMMSS


def _detect_layout(header: list[str], columns: Mapping[str, str] | None) -> _Layout:
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
        raise CsvFormatError(
            f"cannot find column(s) {', '.join(missing)} in header "
            f"({', '.join(header)}); pass an explicit column mapping"
        )
    return _Layout(
        name=layout,
        index=index,
        width=len(header),
        ticker_index=position.get("ticker"),
        compact_date=layout == "stooq-ticker",
    )


class _Parser:
    def __init__(self, *, tz: ZoneInfo, date_format: str | None) -> None:
        self.tz = tz
        self.date_format = date_format

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


def _decimal(value: str, name: str) -> Decimal:
    text = value.strip()
    try:
        result = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"bad {name} {text[:30]!r}") from None
    if not result.is_finite():
        raise ValueError(f"bad {name} {text[:30]!r}")
    return result


class CsvProvider(Provider):
    """History-only provider over one CSV file."""

    name = "csv"
    asset_classes = frozenset()

    def __init__(
        self,
        *,
        path: str | Path,
        columns: Mapping[str, str] | None = None,
        timezone: str | None = None,
        date_format: str | None = None,
        skip_bad: bool = False,
        timeframe: str | None = None,
        symbols: Mapping[str, str] | None = None,
        rate_limiter: Any = None,
    ) -> None:
        super().__init__(symbols=symbols, rate_limiter=rate_limiter)
        if timeframe is not None and timeframe not in INTERVALS:
            raise InvalidRequestError(
                f"timeframe {timeframe!r}: CSV files load as "
                f"{', '.join(INTERVALS)} bars"
            )
        self.timeframe = timeframe
        self.path = Path(path)
        self.columns = dict(columns) if columns else None
        self.skip_bad = skip_bad
        try:
            self.tz = ZoneInfo(timezone or DEFAULT_TIMEZONE)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidRequestError(f"unknown timezone {timezone!r}") from None
        self._parser = _Parser(tz=self.tz, date_format=date_format)
        self._summary: CsvSummary | None = None

    # --- streaming: not available --------------------------------------------
    def stream_url(self, *, asset_class: str, symbols: Iterable[str] = ()) -> str:
        raise ProviderError("the csv provider is history-only", permanent=True)

    def auth_messages(self) -> list[str]:
        return []

    def subscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        return []

    def unsubscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        return []

    def parse_frame(
        self, frame: str | bytes, received_at: datetime | None = None
    ) -> list[Event]:
        return [Control(ControlType.MALFORMED, self.name, message="csv has no stream")]

    # --- reading -------------------------------------------------------------
    def _open(self):
        try:
            handle = self.path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read {self.path}: {exc.strerror}"
            ) from None
        return handle

    def _rows(self) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
        """(line, parsed fields) or (line, BadRow) for every data row; also
        sets `self._layout`."""
        with self._open() as handle:
            first = handle.readline()
            if not first.strip():
                raise CsvFormatError(f"{self.path}: empty file, no header")
            delimiter = max((",", ";", "\t", "|"), key=first.count)
            header = next(csv.reader([first], delimiter=delimiter))
            layout = _detect_layout(header, self.columns)
            self._layout = layout
            reader = csv.reader(handle, delimiter=delimiter)
            line = 1
            idx = layout.index
            optional = [f for f in ("volume", "vwap", "trade_count") if f in idx]
            for record in reader:
                line_start = line + 1
                line = reader.line_num + 1  # +1: the header was read separately
                if not record or all(not cell.strip() for cell in record):
                    continue
                if len(record) != layout.width:
                    yield (
                        line_start,
                        BadRow(
                            line_start,
                            f"expected {layout.width} fields, found {len(record)}",
                        ),
                    )
                    continue
                try:
                    raw_ts = record[idx["ts"]] if "ts" in idx else record[idx["date"]]
                    time_value = record[idx["time"]] if "time" in idx else None
                    try:
                        ts, date_only = self._parser.timestamp(raw_ts, time_value)
                    except (ValueError, OverflowError, TypeError):
                        shown = (
                            raw_ts if time_value is None else f"{raw_ts} {time_value}"
                        )
                        raise ValueError(
                            f"bad timestamp {shown.strip()[:40]!r}"
                        ) from None
                    row: dict[str, Any] = {"ts": ts, "date_only": date_only}
                    for name in ("open", "high", "low", "close"):
                        row[name] = _decimal(record[idx[name]], name)
                    for name in optional:
                        text = record[idx[name]].strip()
                        if not text:
                            continue
                        if name == "trade_count":
                            if not text.isdigit():
                                raise ValueError(f"bad trades {text[:30]!r}")
                            row[name] = int(text)
                        else:
                            row[name] = _decimal(text, name)
                    self._check(row)
                    if layout.ticker_index is not None:
                        row["ticker"] = record[layout.ticker_index].strip()
                except ValueError as exc:
                    yield line_start, BadRow(line_start, str(exc))
                    continue
                yield line_start, row

    @staticmethod
    def _check(row: dict[str, Any]) -> None:
        o, h, lo, c = row["open"], row["high"], row["low"], row["close"]
        if min(o, h, lo, c) <= 0:
            raise ValueError("prices must be positive")
        if h < max(o, c, lo) or lo > min(o, c):
            raise ValueError(
                f"high {h} / low {lo} do not contain open {o} and close {c}"
            )
        volume = row.get("volume")
        if volume is not None and volume < 0:
            raise ValueError(f"negative volume {volume}")

    def summary(self) -> CsvSummary:
        """Validate the whole file (first pass) and describe it."""
        if self._summary is not None:
            return self._summary
        seen: dict[datetime, int] = {}
        bad: list[BadRow] = []
        diffs: Counter[int] = Counter()
        off_minute: list[tuple[int, datetime]] = []
        # (line, previous line, seconds) of rows closer than an hour
        close: list[tuple[int, int, int]] = []
        tickers: set[str] = set()
        rows = good = 0
        all_date_only = True
        all_midnight = True
        previous: datetime | None = None
        previous_line = 0
        first = last = None
        for line, row in self._rows():
            rows += 1
            if isinstance(row, BadRow):
                bad.append(row)
                continue
            ts = row["ts"]
            if ts in seen:
                bad.append(
                    BadRow(line, f"duplicate timestamp (first on line {seen[ts]})")
                )
                continue
            seen[ts] = line
            good += 1
            all_date_only &= row["date_only"]
            if all_midnight:
                local = ts.astimezone(self.tz)
                all_midnight = (local.hour, local.minute, local.second) == (
                    0,
                    0,
                    0,
                ) or (
                    ts.hour,
                    ts.minute,
                    ts.second,
                ) == (0, 0, 0)
            if ts.second or ts.microsecond:
                off_minute.append((line, ts))
            else:  # spacing is measured between minute-aligned rows only
                if previous is not None:
                    gap = abs(int((ts - previous).total_seconds()))
                    diffs[gap] += 1
                    if gap < 3_600:
                        close.append((line, previous_line, gap))
                previous, previous_line = ts, line
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
            if "ticker" in row:
                tickers.add(row["ticker"])
        summary = CsvSummary(path=str(self.path), layout=self._layout.name, rows=rows)
        summary.tickers = tuple(sorted(tickers))
        demoted = 0  # parsed rows that the interval rules make bad
        if good:
            daily = all_date_only or all_midnight
            if not daily and not diffs and self.timeframe in ("1m", "1h"):
                interval = INTERVALS[self.timeframe]  # one timed row: as told
            else:
                interval = self._interval(daily, diffs)
            summary.interval_seconds = interval
            summary.timeframe = TIMEFRAMES.get(interval)
            if summary.timeframe is None:
                raise CsvFormatError(
                    f"{self.path}: rows are {_human(interval)} apart; Tapeline loads "
                    "1-minute, 1-hour and daily files only, so resample the file to "
                    "one of those first (storing its bars under another timeframe "
                    "would be wrong)",
                    bad_rows=bad,
                    interval_seconds=interval,
                )
            if self.timeframe and summary.timeframe != self.timeframe:
                raise CsvFormatError(
                    f"{self.path}: rows are {_human(interval)} apart, so the file "
                    f"holds {summary.timeframe} bars, not {self.timeframe} as "
                    "requested",
                    bad_rows=bad,
                    interval_seconds=interval,
                )
            if summary.timeframe in ("1m", "1h"):
                demoted += len(off_minute)
                bad.extend(
                    BadRow(line, "timestamp is not on a minute boundary")
                    for line, _ in off_minute
                )
            if summary.timeframe == "1h":
                demoted += len(close)
                bad.extend(
                    BadRow(
                        line,
                        f"only {_human(gap)} after line {before}: hourly bars "
                        "must be at least an hour apart",
                    )
                    for line, before, gap in close
                )
        bad.sort(key=lambda b: b.line)
        summary.bad_rows = bad
        summary.good_rows = good - demoted
        summary.first_ts, summary.last_ts = first, last
        self._summary = summary
        return summary

    @staticmethod
    def _interval(daily: bool, diffs: Counter[int]) -> int:
        if daily:  # dates only, or every row at midnight
            return 86_400
        if not diffs:  # a single timed row: treat as a minute
            return 60
        # the most common spacing; ties go to the smaller one
        interval = min(diffs, key=lambda d: (-diffs[d], d))
        if interval in _DAY_DIFFS:
            return 86_400
        return interval

    def validate(self) -> CsvSummary:
        """The summary, or `CsvFormatError` listing every bad line unless
        `skip_bad` (then the summary lists them and the good rows load)."""
        summary = self.summary()
        if summary.bad_rows and not self.skip_bad:
            listed = "; ".join(map(str, summary.bad_rows))
            raise CsvFormatError(
                f"{self.path}: {len(summary.bad_rows)} bad row(s), nothing loaded "
                f"(use skip-bad to load the {summary.good_rows} good rows): {listed}",
                bad_rows=summary.bad_rows,
            )
        if not summary.good_rows:
            raise CsvFormatError(
                f"{self.path}: no data rows", bad_rows=summary.bad_rows
            )
        return summary

    def iter_bars(self, *, symbol: str) -> Iterator[BarEvent]:
        """Every good bar in file order (second pass)."""
        summary = self.validate()
        bad_lines = {b.line for b in summary.bad_rows}
        timeframe = summary.timeframe or "1m"
        for line, row in self._rows():
            if isinstance(row, BadRow) or line in bad_lines:
                continue
            yield BarEvent(
                symbol=symbol,
                ts=row["ts"],
                open=row["open"],
                high=row["high"],
                low=row["low"],
                close=row["close"],
                volume=row.get("volume", Decimal(0)),
                provider=self.name,
                timeframe=timeframe,
                vwap=row.get("vwap"),
                trade_count=row.get("trade_count"),
            )

    def fetch_bars(
        self, *, symbol: str, start: datetime, end: datetime, timeframe: str = "1m"
    ) -> Iterator[list[BarEvent]]:
        summary = self.validate()
        if summary.timeframe != timeframe:
            raise InvalidRequestError(
                f"{self.path} holds {summary.timeframe} bars, not {timeframe}"
            )
        page: list[BarEvent] = []
        for bar in self.iter_bars(symbol=symbol):
            if start <= bar.ts < end:
                page.append(bar)
                if len(page) >= PAGE_SIZE:
                    yield page
                    page = []
        if page:
            yield page


def _human(seconds: int) -> str:
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def read_csv_bars(
    path: str | Path,
    *,
    symbol: str,
    columns: Mapping[str, str] | None = None,
    timezone: str | None = None,
    date_format: str | None = None,
    skip_bad: bool = False,
    timeframe: str | None = None,
) -> tuple[list[BarEvent], CsvSummary]:
    """Convenience: every bar of a small file plus its summary."""
    provider = CsvProvider(
        path=path, columns=columns, timezone=timezone, date_format=date_format,
        skip_bad=skip_bad, timeframe=timeframe,
    )  # fmt: skip
    bars = list(provider.iter_bars(symbol=symbol))
    return bars, provider.summary()


__all__ = [
    "BadRow",
    "CsvFormatError",
    "CsvProvider",
    "CsvSummary",
    "read_csv_bars",
]
