"""Which CSV column holds what: layouts detected from the header, and column
mappings given by the user (`load_history --columns time=Date,open=Open,...`).

Layouts (header names are matched case-insensitively):
- Yahoo: `Date,Open,High,Low,Close,Adj Close,Volume` (`Close` is used: raw,
  not adjusted, like the other providers' `adjustment=raw`).
- pandas `DataFrame.to_csv()`: the index is the first column and, when the
  index has no name, the first header cell is empty (`,Open,High,...`): that
  column is the time. After `reset_index()` the empty-named column is a row
  number and a named time column follows (`,Date,Open,...`): the row number
  is ignored. yfinance's two-level columns write three header lines
  (`Price,Close,High,...` / `Ticker,AAPL,...` / `Date,,,...`); one ticker per
  file is read, several are refused (a price column would be ambiguous).
- Stooq: `Date,Open,High,Low,Close[,Volume]`, and the
  `<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>`
  export (DATE `YYYYMMDD`, TIME `HHMMSS`).
- Generic: a time column (`time`, `timestamp`, `datetime`, `date`, `open_time`,
  `time_utc`, or separate `date` + `time`) and `open/high/low/close[/volume]
  [/vwap][/trades]` in any order (TradingView, Binance dumps with a header,
  MetaTrader 5 `<DATE>\\t<TIME>\\t<OPEN>...` exports, Tapeline's own chart
  export).
- Without a header: Binance kline dumps (12 columns, open time in epoch ms or
  µs) and MetaTrader 4 history exports (`2024.01.02,09:30,O,H,L,C,V`).
- A column mapping names the columns of anything else; fields it leaves out
  are still found by the names above.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from marketdata.providers.csv_parse import CsvFormatError

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
    "ts": (
        "timestamp",
        "datetime",
        "date_time",
        "time_stamp",
        "open_time",
        "time_utc",
        "t",
    ),
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
TIME_FIELDS = ("ts", "date", "time")
REQUIRED = ("open", "high", "low", "close")
# What a user writes on the left of `--columns target=column`. `time` alone is
# the bar's time (a date-time, a date or epoch numbers); with `date` it is the
# clock-time column that goes with the date column.
TARGETS = ("time", "date", "open", "high", "low", "close", "volume", "vwap", "trades")
_TARGET_SYNONYMS = {"timestamp": "time", "datetime": "time", "ts": "time"}
_DOTTED_DATE = re.compile(r"\d{4}\.\d{2}\.\d{2}\Z")
_CLOCK = re.compile(r"\d{1,2}:\d{2}(:\d{2})?\Z")
EXAMPLE = "--columns time=Date,open=Open,high=High,low=Low,close=Close,volume=Volume"


@dataclass
class Layout:
    name: str
    index: dict[str, int]
    width: int
    ticker_index: int | None = None
    headerless: bool = False  # the first line is data (line 1)
    header_lines: int = 1  # yfinance's two-level columns take three


def _norm(name: str) -> str:
    name = name.strip().strip("\ufeff").strip("<>").strip().lower()
    return re.sub(r"[\s\-]+", "_", name)


def column_mapping_parse(text: str) -> dict[str, str]:
    """`"time=Date,open=Open"` -> ``{"ts": "Date", "open": "Open"}`` (the
    `columns` a `CsvProvider` takes), or `CsvFormatError` naming every
    problem at once: items without `=`, unknown targets, repeated targets,
    empty column names."""
    pairs: list[tuple[str, str]] = []
    malformed: list[str] = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        target, sep, column = item.partition("=")
        target = _norm(target)
        target = _TARGET_SYNONYMS.get(target, target)
        if not sep or not target or not column.strip():
            malformed.append(item.strip())
            continue
        pairs.append((target, column.strip()))
    problems = []
    if malformed:
        problems.append(
            "expected target=column, got " + ", ".join(repr(m) for m in malformed)
        )
    unknown = sorted({t for t, _ in pairs if t not in TARGETS})
    if unknown:
        problems.append(
            f"unknown target(s) {', '.join(unknown)}; targets are {', '.join(TARGETS)}"
        )
    seen: set[str] = set()
    repeated = sorted({t for t, _ in pairs if t in seen or seen.add(t)})
    if repeated:
        problems.append(f"target(s) given twice: {', '.join(repeated)}")
    if not pairs and not malformed:
        problems.append("empty mapping")
    if problems:
        raise CsvFormatError(
            f"bad column mapping {text!r}: {'; '.join(problems)} (e.g. {EXAMPLE})"
        )
    mapping = dict(pairs)
    columns: dict[str, str] = {}
    for target, column in mapping.items():
        if target == "trades":
            columns["trade_count"] = column
        elif target == "time" and "date" not in mapping:
            columns["ts"] = column
        else:
            columns[target] = column
    return columns


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


def _mapped(
    header: list[str], position: dict[str, int], columns: Mapping[str, str]
) -> dict[str, int]:
    unknown = set(columns) - set(FIELDS)
    if unknown:
        raise CsvFormatError(
            f"unknown field(s) in column mapping: {', '.join(sorted(unknown))}; "
            f"fields are {', '.join(FIELDS)}"
        )
    absent = [
        f"{column!r} (for {field})"
        for field, column in columns.items()
        if _norm(column) not in position
    ]
    if absent:
        raise CsvFormatError(
            f"mapped column(s) {', '.join(absent)} not in the header "
            f"({', '.join(header)[:300]})"
        )
    return {field: position[_norm(column)] for field, column in columns.items()}


def detect_layout(header: list[str], columns: Mapping[str, str] | None) -> Layout:
    """The layout of a file whose first line is `header`; `columns` (field ->
    header name) overrides what the names above would find."""
    if not columns:
        headerless = _headerless_layout(header)
        if headerless is not None:
            return headerless
    names = [_norm(h) for h in header]
    position = {name: i for i, name in reversed(list(enumerate(names)))}
    index = _mapped(header, position, columns) if columns else {}
    header_lines = 1
    if names and names[0] == "price" and "close" in names[1:]:
        layout = "yfinance"
        repeated = sorted({n for n in REQUIRED if names.count(n) > 1})
        if repeated:
            raise CsvFormatError(
                f"the file holds several tickers (column {repeated[0]!r} appears "
                f"{names.count(repeated[0])} times); save one ticker per file, "
                "e.g. df.xs('AAPL', axis=1, level='Ticker').to_csv()"
            )
        position.pop("price")
        header_lines = 3
    elif names and names[0] == "" and len(names) > 1:
        layout = "pandas"
    elif "ticker" in position and "per" in position:
        layout = "stooq-ticker"
    elif "adj_close" in position:
        layout = "yahoo"
    elif names[:5] == ["date", "open", "high", "low", "close"] and len(names) <= 7:
        layout = "stooq"
    else:
        layout = "generic"
    if columns:
        layout = "mapped"
    mapped_time = any(f in index for f in TIME_FIELDS)
    for fieldname, aliases in ALIASES.items():
        if fieldname in index or (mapped_time and fieldname in TIME_FIELDS):
            continue
        for alias in aliases:
            if alias in position:
                index[fieldname] = position[alias]
                break
    if "ts" not in index and "date" in index and "time" not in index:
        index["ts"] = index.pop("date")
    if "ts" not in index and "time" in index and "date" not in index:
        index["ts"] = index.pop("time")
    if (
        "ts" not in index
        and "date" not in index
        and names
        and names[0]
        in (
            "",
            "price",
        )
    ):
        index["ts"] = 0  # the DataFrame's index
    if "ts" in index and "date" in index and "time" not in index:
        index.pop("date")
    has_time = "ts" in index or "date" in index
    missing = [f for f in REQUIRED if f not in index]
    if not has_time:
        missing.insert(0, "time")
    if missing:
        shown = ", ".join(header)
        raise CsvFormatError(
            f"cannot find column(s) for {', '.join(missing)} in the header "
            f"({shown[:300]}); name them with a column mapping, e.g. "
            f"load_history {EXAMPLE}"
        )
    return Layout(
        name=layout,
        index=index,
        width=len(header),
        ticker_index=position.get("ticker"),
        header_lines=header_lines,
    )
