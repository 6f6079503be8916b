"""CSV renderings of what the pages show: an instrument's bars with indicator
columns, and a watchlist's quotes.

Times are ISO 8601 in UTC with a `Z` (`2024-01-02T14:30:00Z`) under a header
that names the zone (`time_utc`), whatever the display zone: a file is read by
programs and other people, and UTC is the one zone nobody has to guess. The
bars file loads back with `load_history --provider csv` (1m, 1h and 1d).

Text cells that a spreadsheet would run as a formula (starting with `=`, `+`,
`-`, `@`, a tab or a carriage return) get a leading `'` (OWASP "CSV
injection"); numbers are written as numbers. Quoting is the csv module's
(fields with commas, quotes or line breaks are quoted, quotes doubled).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Snapshot figures of a watchlist row, as the snapshot names them.
SNAPSHOT_FIGURES = (
    "last",
    "change",
    "change_pct",
    "prev_close",
    "open",
    "high",
    "low",
    "volume",
    "bid",
    "ask",
)
WATCHLIST_COLUMNS = (
    "symbol",
    "name",
    "exchange",
    "asset_class",
    "currency",
    *SNAPSHOT_FIGURES,
    "updated_utc",
    "freshness",
)


def text_cell(value: str | None) -> str:
    value = value or ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def utc_iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decimal(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, Decimal):
        number = value
    else:
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return ""
    if not number.is_finite():
        return ""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _floats(values: np.ndarray) -> list[str]:
    """Indicator values to 8 decimal places (what prices keep), trailing
    zeros dropped; NaN (warming up) as an empty cell."""
    return [
        "" if v != v else (f"{v:.8f}".rstrip("0").rstrip(".") or "0")
        for v in values.tolist()
    ]


def indicator_column(key: str, line: str) -> str:
    """`("bb:20:2", "upper")` -> `bb_20_2_upper`; `("sma:20", "sma")` ->
    `sma_20`: names a spreadsheet and pandas take as they are."""
    base = re.sub(r"[^0-9A-Za-z.]+", "_", key)
    return base if line == key.split(":")[0] else f"{base}_{line}"


def bars_csv(
    *,
    rows: Sequence[tuple],
    indicators: dict[str, dict[str, np.ndarray]],
    skip: int = 0,
) -> str:
    """Bars `(ts, open, high, low, close, volume, trade_count)` as CSV, then
    one column per indicator line; indicator arrays cover `skip` warm-up
    bars before `rows`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    lines = [
        (indicator_column(key, line), _floats(values[skip:]))
        for key, series in indicators.items()
        for line, values in series.items()
    ]
    writer.writerow(
        ["time_utc", "open", "high", "low", "close", "volume", "trades"]
        + [name for name, _ in lines]
    )
    for i, (ts, o, h, lo, c, v, n) in enumerate(rows):
        writer.writerow(
            [utc_iso(ts), *map(_decimal, (o, h, lo, c, v)), "" if n is None else n]
            + [values[i] for _, values in lines]
        )
    return out.getvalue()


def watchlist_csv(*, entries: Iterable[tuple[Any, dict | None]]) -> str:
    """One row per `(instrument, snapshot)`; prices as the snapshot carries
    them (exact strings), absent values empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(WATCHLIST_COLUMNS)
    for instrument, snapshot in entries:
        snap = snapshot or {}
        updated = snap.get("ts")
        writer.writerow(
            [
                text_cell(instrument.symbol),
                text_cell(instrument.name),
                text_cell(instrument.exchange),
                instrument.asset_class,
                instrument.currency,
                *(_decimal(snap.get(field)) for field in SNAPSHOT_FIGURES),
                utc_iso(datetime.fromisoformat(updated)) if updated else "",
                snap.get("freshness") or "",
            ]
        )
    return out.getvalue()
