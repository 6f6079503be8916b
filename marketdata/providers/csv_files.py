"""History from CSV files: pandas `to_csv()`, Yahoo, yfinance, Stooq,
TradingView, Binance, MetaTrader and generic OHLCV layouts.

Layouts and column mappings are in `marketdata.providers.csv_layout`,
timestamps and the values storage can keep in
`marketdata.providers.csv_parse`; encodings and line lengths in
`marketdata.providers.csv_text`. Naive timestamps are local to `timezone`
(default America/New_York, where Alpaca also stamps daily bars: midnight New
York); pass "UTC" for files in UTC. Epoch numbers and values with an offset
are absolute.

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

Every bad row is reported with its line number (line 1 is the header, or the
first row of a file without one). By default a file with any bad row loads
nothing (`CsvFormatError` lists the bad lines); with `skip_bad=True` the good
rows load and the summary lists the bad ones. More than `MAX_BAD_ROWS` bad
rows refuse the file either way (the wrong file or layout, most likely).

Memory stays flat on large files: the file is streamed twice (validate, then
yield pages), and what the first pass keeps is bounded by the file's time
span (one bit per minute for duplicate detection) and by `MAX_BAD_ROWS`, not
by its number of rows.

Over 400 lines: the provider and its validation passes over one file belong
together; layouts, values and text reading live in the sibling modules named
above.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marketdata.events import BarEvent, Control, ControlType, Event
from marketdata.models import Timeframe
from marketdata.providers.base import InvalidRequestError, Provider, ProviderError
from marketdata.providers.csv_layout import Layout, detect_layout
from marketdata.providers.csv_parse import BadRow, CsvFormatError, RowParser
from marketdata.providers.csv_text import MAX_LINE, TextLines, encoding_checked
from marketdata.rollups import STEPS

DEFAULT_TIMEZONE = "America/New_York"
PAGE_SIZE = 5000
MAX_BAD_ROWS = 100_000
LISTED_BAD_ROWS = 20  # in an error message; the command prints more
# A file holds one of the stored timeframes (`models.Timeframe`); the others
# (5m, 15m) are only ever resampled from minutes.
INTERVALS = {name: int(STEPS[name].total_seconds()) for name in Timeframe.values}
TIMEFRAMES = {seconds: timeframe for timeframe, seconds in INTERVALS.items()}
_DAY_DIFFS = frozenset({82_800, 86_400, 90_000})  # 23/24/25 h across DST changes
_MAX_SPACINGS = 10_000  # distinct row spacings counted before rare ones are dropped


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
            text += f"; {len(self.bad_rows)} bad: " + _listed(self.bad_rows)
        return text


def _listed(bad_rows: list[BadRow]) -> str:
    text = "; ".join(map(str, bad_rows[:LISTED_BAD_ROWS]))
    if len(bad_rows) > LISTED_BAD_ROWS:
        text += f"; ... and {len(bad_rows) - LISTED_BAD_ROWS} more"
    return text


class _SeenTimes:
    """Timestamps seen so far, in memory bounded by the time span rather than
    the rows: one bit per minute since 1970 (64 KB blocks of ~1 year,
    allocated as reached; under 4 MB for all of them), and a set for the few
    timestamps off a minute boundary."""

    _BLOCK = 1 << 19  # minutes

    def __init__(self) -> None:
        self.blocks: dict[int, bytearray] = {}
        self.others: set[datetime] = set()

    def add(self, ts: datetime) -> bool:
        """Whether `ts` is new (and now seen)."""
        if ts.second or ts.microsecond:
            if ts in self.others:
                return False
            self.others.add(ts)
            return True
        key, offset = divmod(int(ts.timestamp()) // 60, self._BLOCK)
        block = self.blocks.get(key)
        if block is None:
            block = self.blocks[key] = bytearray(self._BLOCK // 8)
        byte, mask = offset >> 3, 1 << (offset & 7)
        if block[byte] & mask:
            return False
        block[byte] |= mask
        return True


def _csv_problem(exc: csv.Error) -> str:
    if "field limit" in str(exc):
        return (
            f"a field is longer than {csv.field_size_limit()} characters "
            "(is this a CSV file of bars?)"
        )
    return f"unreadable CSV ({exc})"


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
        encoding: str | None = None,
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
        self.encoding = encoding_checked(encoding) if encoding else None
        try:
            self.tz = ZoneInfo(timezone or DEFAULT_TIMEZONE)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidRequestError(f"unknown timezone {timezone!r}") from None
        self.date_format = date_format
        # One "now" for every pass, so "after tomorrow" means the same in each.
        self._now = datetime.now(UTC)
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
    def _rows(self) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
        """(line, parsed fields) or (line, BadRow) for every data row; also
        sets `self._layout`."""
        with TextLines(self.path, encoding=self.encoding) as lines:
            physical = iter(lines)
            first = next(physical, "")
            if not first.strip():
                raise CsvFormatError(f"{self.path}: empty file, no header")
            if 1 in lines.overlong:
                raise CsvFormatError(
                    f"{self.path}: line 1 is longer than {MAX_LINE:,} characters; "
                    "is this a CSV file of bars?"
                )
            if "\x00" in first:
                raise CsvFormatError(
                    f"{self.path}: line 1 holds NUL bytes: UTF-16 without a "
                    "byte-order mark? Pass --encoding utf-16-le (or utf-16-be)"
                )
            delimiter = max((",", ";", "\t", "|"), key=first.count)
            try:
                header = next(csv.reader([first], delimiter=delimiter))
            except csv.Error as exc:
                raise CsvFormatError(
                    f"{self.path}: line 1: {_csv_problem(exc)}"
                ) from None
            layout = self._layout = detect_layout(header, self.columns)
            parser = RowParser(
                layout=layout, tz=self.tz, date_format=self.date_format, now=self._now
            )
            if layout.headerless:
                yield 1, self._parsed(1, header, parser)
            reader = csv.reader(physical, delimiter=delimiter)
            self._more_header_lines(reader, layout)
            while True:
                line = lines.number + 1  # where the next record starts
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield line, BadRow(line, _csv_problem(exc))
                    continue
                if lines.overlong and not lines.overlong.isdisjoint(
                    range(line, lines.number + 1)
                ):
                    reason = f"line is longer than {MAX_LINE:,} characters"
                    yield line, BadRow(line, reason)
                    continue
                if not record or all(not cell.strip() for cell in record):
                    continue
                yield line, self._parsed(line, record, parser)

    def _more_header_lines(self, reader, layout: Layout) -> None:
        """Read past yfinance's `Ticker,...` and `Date,,,...` lines, checking
        them: a file that merely starts with a `Price` column is not that."""
        for line in range(2, layout.header_lines + 1):
            try:
                record = next(reader, [])
            except csv.Error as exc:
                raise CsvFormatError(
                    f"{self.path}: line {line}: {_csv_problem(exc)}"
                ) from None
            first = record[0].strip().lower() if record else ""
            rest = [cell.strip() for cell in record[1:]]
            if line == 2 and first == "ticker":
                tickers = sorted(set(rest) - {""})
                if len(tickers) > 1:
                    raise CsvFormatError(
                        f"{self.path}: line 2 names several tickers "
                        f"({', '.join(tickers[:5])}); save one ticker per file"
                    )
            elif line == 3 and first in ("date", "datetime") and not any(rest):
                pass
            else:
                raise CsvFormatError(
                    f"{self.path}: line {line}: expected yfinance's "
                    f"{'Ticker' if line == 2 else 'Date'} header line after "
                    f"'Price,...', found {','.join(record)[:80]!r}"
                )

    @staticmethod
    def _parsed(
        line: int, record: list[str], parser: RowParser
    ) -> dict[str, Any] | BadRow:
        width = parser.layout.width
        if len(record) != width:
            return BadRow(line, f"expected {width} fields, found {len(record)}")
        try:
            return parser.parse(record)
        except ValueError as exc:
            return BadRow(line, str(exc))

    def _too_many_bad(self, bad: list[BadRow]) -> CsvFormatError:
        return CsvFormatError(
            f"{self.path}: more than {MAX_BAD_ROWS:,} bad rows, nothing loaded; is "
            f"this the right file and layout? First ones: {_listed(bad)}",
            bad_rows=bad[:MAX_BAD_ROWS],
        )

    def summary(self) -> CsvSummary:
        """Validate the whole file (first pass) and describe it."""
        if self._summary is not None:
            return self._summary
        seen = _SeenTimes()
        bad: list[BadRow] = []
        duplicates: list[tuple[int, datetime]] = []
        diffs: Counter[int] = Counter()
        off_minute: list[int] = []  # lines
        close = 0  # rows less than an hour after the previous one
        tickers: set[str] = set()
        rows = good = 0
        all_date_only = True
        all_midnight = True
        previous: datetime | None = None
        first = last = None
        for line, row in self._rows():
            rows += 1
            if isinstance(row, BadRow):
                bad.append(row)
                if len(bad) + len(duplicates) > MAX_BAD_ROWS:
                    raise self._too_many_bad(bad)
                continue
            ts = row["ts"]
            if not seen.add(ts):
                duplicates.append((line, ts))
                if len(bad) + len(duplicates) > MAX_BAD_ROWS:
                    raise self._too_many_bad(bad)
                continue
            good += 1
            all_date_only &= row["date_only"]
            if all_midnight:
                local = ts.astimezone(self.tz)
                all_midnight = (local.hour, local.minute, local.second) == (
                    0,
                    0,
                    0,
                ) or (ts.hour, ts.minute, ts.second) == (0, 0, 0)
            if ts.second or ts.microsecond:
                off_minute.append(line)
                if len(off_minute) > MAX_BAD_ROWS:
                    raise CsvFormatError(
                        f"{self.path}: more than {MAX_BAD_ROWS:,} rows are not on "
                        "a minute boundary; Tapeline loads 1-minute, 1-hour and "
                        "daily bars"
                    )
            else:  # spacing is measured between minute-aligned rows only
                if previous is not None:
                    gap = abs(int((ts - previous).total_seconds()))
                    diffs[gap] += 1
                    if len(diffs) > _MAX_SPACINGS:
                        diffs = Counter({d: n for d, n in diffs.items() if n > 1})
                    close += gap < 3_600
                previous = ts
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
            if "ticker" in row and len(tickers) < 100:
                tickers.add(row["ticker"])
        if duplicates:
            bad.extend(self._duplicate_rows(duplicates))
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
                    for line in off_minute
                )
            if summary.timeframe == "1h" and close:
                demoted += close
                bad.extend(self._overlapping_hours({line for line, _ in duplicates}))
            if len(bad) > MAX_BAD_ROWS:
                raise self._too_many_bad(sorted(bad, key=lambda b: b.line))
        bad.sort(key=lambda b: b.line)
        summary.bad_rows = bad
        summary.good_rows = good - demoted
        summary.first_ts, summary.last_ts = first, last
        self._summary = summary
        return summary

    def _duplicate_rows(self, duplicates: list[tuple[int, datetime]]) -> list[BadRow]:
        """Rows repeating an earlier timestamp, each naming the first line
        with it: found by one more pass, since the first pass keeps no line
        per timestamp (that would cost memory per row)."""
        wanted = {ts for _, ts in duplicates}
        firsts: dict[datetime, int] = {}
        for line, row in self._rows():
            if isinstance(row, BadRow) or row["ts"] not in wanted:
                continue
            firsts.setdefault(row["ts"], line)
            if len(firsts) == len(wanted):
                break
        return [
            BadRow(line, f"duplicate timestamp (first on line {firsts[ts]})")
            for line, ts in duplicates
        ]

    def _overlapping_hours(self, duplicate_lines: set[int]) -> list[BadRow]:
        """Rows of an hourly file less than an hour after the previous one,
        by one more pass over the same rows as the first (hourly files are
        small; in minute files every row would qualify, so the first pass
        only counts them)."""
        found: list[BadRow] = []
        previous: datetime | None = None
        previous_line = 0
        for line, row in self._rows():
            if isinstance(row, BadRow) or line in duplicate_lines:
                continue
            ts = row["ts"]
            if ts.second or ts.microsecond:
                continue
            if previous is not None:
                gap = abs(int((ts - previous).total_seconds()))
                if gap < 3_600:
                    found.append(
                        BadRow(
                            line,
                            f"only {_human(gap)} after line {previous_line}: "
                            "hourly bars must be at least an hour apart",
                        )
                    )
            previous, previous_line = ts, line
        return found

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
        """The summary, or `CsvFormatError` listing the bad lines unless
        `skip_bad` (then the summary lists them and the good rows load)."""
        summary = self.summary()
        if summary.bad_rows and not self.skip_bad:
            raise CsvFormatError(
                f"{self.path}: {len(summary.bad_rows)} bad row(s), nothing loaded "
                f"(use skip-bad to load the {summary.good_rows} good rows): "
                f"{_listed(summary.bad_rows)}",
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
    encoding: str | None = None,
) -> tuple[list[BarEvent], CsvSummary]:
    """Convenience: every bar of a small file plus its summary."""
    provider = CsvProvider(
        path=path, columns=columns, timezone=timezone, date_format=date_format,
        skip_bad=skip_bad, timeframe=timeframe, encoding=encoding,
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
