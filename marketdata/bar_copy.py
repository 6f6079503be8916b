"""Bulk writes into the bar tables: PostgreSQL COPY, or multi-row INSERTs on
a server that cannot take COPY.

`BAR_COPY` (settings) chooses: `on` always COPYs, `off` never does, `auto`
(the default) COPYs unless the server is the WebAssembly PostgreSQL the test
suite runs TimescaleDB on (PGlite: `version()` says "Emscripten"). That
engine does not refuse COPY ... FROM STDIN, its process dies on it, so the
choice is made by looking at the server once per database, never by trying.
Real PostgreSQL and TimescaleDB servers always COPY (~310,000 rows/s through
staging, performance-facts.md); the INSERT path writes INSERT_BATCH rows per
statement.

`bars_upsert` (marketdata.services) works in these stages, each timed by
`bench/bench_storage.py`: `latest_rows` (the last of duplicate keys, the
provider and origin appended), `missing_rows` (which keys are stored
already), then `rows_write` into the bar table, or `upsert_via_staging`.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from django.conf import settings

# Rows per INSERT: ~30 KB statements. That engine also dies on any client
# message longer than one socket read (~64 KB; 600 bars are), which is
# likely what kills it on COPY too.
INSERT_BATCH = 250
_COPY_USABLE: dict[tuple, bool] = {}


def _server_key(cursor) -> tuple:
    info = cursor.connection.info
    return (info.host, info.port, info.dbname)


def copy_usable(cursor) -> bool:
    """Whether bulk writes on this connection may use COPY (see the module
    docstring); `cursor` is a Django cursor."""
    mode = settings.BAR_COPY
    if mode in ("on", "off"):
        return mode == "on"
    key = _server_key(cursor)
    if key not in _COPY_USABLE:
        cursor.execute("SELECT version()")
        _COPY_USABLE[key] = "emscripten" not in cursor.fetchone()[0].lower()
    return _COPY_USABLE[key]


BAR_COLUMNS = (
    "instrument_id",
    "timeframe",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trade_count",
    "provider",
    "origin",
)
_KEY = "instrument_id, timeframe, ts"
_VALUES = ("open", "high", "low", "close", "volume", "vwap", "trade_count")


def latest_rows(rows: list, *, tail: tuple[str, str]) -> dict[tuple, tuple]:
    """Rows (tuples in BAR_COLUMNS order without the tail, or objects with
    those attributes) keyed by (instrument_id, timeframe, ts), `tail`
    (provider, origin) appended; the last of duplicate keys wins."""
    if all(type(row) is tuple for row in rows):
        return {row[:3]: row + tail for row in rows}
    latest = {}
    for row in rows:
        if isinstance(row, tuple | list):
            values = tuple(row)
        else:
            values = (
                row.instrument_id,
                row.timeframe,
                row.ts,
                row.open,
                row.high,
                row.low,
                row.close,
                row.volume,
                row.vwap,
                row.trade_count,
            )
        latest[values[:3]] = values + tail
    return latest


def missing_rows(cursor, latest: dict[tuple, tuple]) -> list[tuple] | None:
    """The rows whose key is not stored yet, found with one index-only range
    scan per (instrument, timeframe) over the rows' time span (a fresh range
    returns nothing); None when the span holds far more stored bars than the
    rows (then the staging path is cheaper)."""
    groups: dict[tuple, list] = {}
    for key in latest:
        group = groups.get(key[:2])
        if group is None:
            groups[key[:2]] = [key[2]]
        else:
            group.append(key[2])
    missing: list[tuple] = []
    for (instrument_id, timeframe), stamps in groups.items():
        cap = 2 * len(stamps) + 100
        cursor.execute(
            "SELECT ts FROM marketdata_bar WHERE instrument_id = %s "
            "AND timeframe = %s AND ts >= %s AND ts <= %s LIMIT %s",
            [instrument_id, timeframe, min(stamps), max(stamps), cap + 1],
        )
        found = cursor.fetchall()
        if len(found) > cap:
            return None
        if not found:
            missing.extend([latest[(instrument_id, timeframe, ts)] for ts in stamps])
            continue
        stored = {ts for (ts,) in found}
        missing.extend(
            [
                latest[(instrument_id, timeframe, ts)]
                for ts in stamps
                if ts not in stored
            ]
        )
    return missing


def _staging_table(cursor) -> None:
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bar_staging "
        "(LIKE marketdata_bar INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )


def upsert_via_staging(cursor, rows: Iterable[tuple], *, replace: bool) -> int:
    """COPY into a temporary staging table, then `INSERT … ON CONFLICT`:
    `replace` overwrites changed rows and bumps their revision, else stored
    rows are kept. Returns the rows written."""
    columns = ", ".join(BAR_COLUMNS)
    if replace:
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _VALUES)
        changed = " OR ".join(
            f"marketdata_bar.{name} IS DISTINCT FROM EXCLUDED.{name}"
            for name in _VALUES
        )
        conflict = (
            f"DO UPDATE SET {updates}, provider = EXCLUDED.provider, "
            "origin = EXCLUDED.origin, revision = marketdata_bar.revision + 1 "
            f"WHERE {changed}"
        )
    else:
        conflict = "DO NOTHING"
    _staging_table(cursor)
    rows_write(cursor, table="bar_staging", rows=rows)
    cursor.execute(
        f"INSERT INTO marketdata_bar ({columns}) "
        f"SELECT {columns} FROM bar_staging ORDER BY {_KEY} "
        f"ON CONFLICT ({_KEY}) {conflict}"
    )
    written = cursor.rowcount
    # ON COMMIT DELETE ROWS empties it at commit; an enclosing transaction may
    # call again before that.
    cursor.execute("TRUNCATE bar_staging")
    return written


def rows_write(
    cursor,
    *,
    table: str,
    rows: Iterable[tuple],
    columns: tuple[str, ...] = BAR_COLUMNS,
):
    """Write `rows` (tuples in `columns` order) into `table` in bulk."""
    names = ", ".join(columns)
    if copy_usable(cursor):
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            write = copy.write_row
            for values in rows:
                write(values)
        return
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    rows = iter(rows)
    while batch := list(islice(rows, INSERT_BATCH)):
        cursor.execute(
            f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * len(batch)),
            [value for values in batch for value in values],
        )
