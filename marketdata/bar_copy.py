"""Bulk writes into the bar tables: PostgreSQL COPY, or multi-row INSERTs on
a server that cannot take COPY.

`BAR_COPY` (settings) chooses: `on` always COPYs, `off` never does, `auto`
(the default) COPYs unless the server is the WebAssembly PostgreSQL the test
suite runs TimescaleDB on (PGlite: `version()` says "Emscripten"). That
engine does not refuse COPY ... FROM STDIN, its process dies on it, so the
choice is made by looking at the server once per database, never by trying.
The INSERT path writes INSERT_BATCH rows per statement.

`bars_upsert` (marketdata.services) works in these stages, each timed by
`bench/bench_storage.py` (figures in bench/PROFILE-storage.md):
`bar_tuples` + `latest_rows` (the last of duplicate keys; a provider page,
one instrument in time order, passes unchanged), `missing_rows` (which keys
are stored already: one range scan per instrument, nothing returned for a
fresh range), then `rows_write` into the bar table, or `upsert_via_staging`.

COPY text is built here (`copy_text`), not by psycopg's `write_row`: its
per-value dumpers spent ~3 µs a row, two thirds of the client's time, mostly
formatting the aware timestamp. Every value is sent as the exact text of the
same value (`str` of a Decimal, int or float, the UTC instant to the µs), so
the server stores what psycopg's dumpers would have made it store; a chunk
holding anything else goes through `write_row`. Binary COPY is slower still
with Decimal inputs (psycopg's binary numeric dumper, measured).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from operator import attrgetter, itemgetter, lt

from django.conf import settings

# Rows per INSERT: ~30 KB statements. That engine also dies on any client
# message longer than one socket read (~64 KB; 600 bars are), which is
# likely what kills it on COPY too.
INSERT_BATCH = 250
# Rows per COPY message (~100 KB): the server stores one while the next is
# encoded.
COPY_CHUNK = 1000
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
_FIELDS = attrgetter(*BAR_COLUMNS[:10])
_GROUP = itemgetter(0, 1)
_TS = itemgetter(2)

# (first ts, last ts, rows) per (instrument_id, timeframe)
Spans = dict[tuple, tuple[datetime, datetime, int]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def bar_tuples(rows: list) -> list[tuple]:
    """`rows` as tuples in BAR_COLUMNS order without provider and origin:
    tuples pass unchanged, lists and objects with those attributes (`BarRow`)
    are converted."""
    if all(type(row) is tuple for row in rows):
        return rows
    return [
        tuple(row) if isinstance(row, tuple | list) else _FIELDS(row) for row in rows
    ]


def latest_rows(rows: list[tuple]) -> tuple[list[tuple], Spans]:
    """The rows with only the last of duplicate (instrument_id, timeframe, ts)
    keys, and their spans. One instrument in strictly rising time (a
    provider page) is checked to be so and returned unchanged."""
    groups = set(map(_GROUP, rows))
    if len(groups) == 1:
        stamps = list(map(_TS, rows))
        if all(map(lt, stamps, islice(stamps, 1, None))):
            return rows, {groups.pop(): (stamps[0], stamps[-1], len(rows))}
    latest = {row[:3]: row for row in rows}
    spans: Spans = {}
    for instrument_id, timeframe, ts in latest:
        span = spans.get((instrument_id, timeframe))
        if span is None:
            spans[(instrument_id, timeframe)] = (ts, ts, 1)
        else:
            spans[(instrument_id, timeframe)] = (
                min(span[0], ts),
                max(span[1], ts),
                span[2] + 1,
            )
    return list(latest.values()), spans


def missing_rows(cursor, rows: list[tuple], spans: Spans) -> list[tuple] | None:
    """The rows whose key is not stored yet, found with one index-only range
    scan per (instrument, timeframe) over the rows' time span (a fresh range
    returns nothing, and `rows` comes back as it is); None when a span holds
    far more stored bars than the rows (then the staging path is cheaper).

    Stored stamps come back as integer microseconds since 1970: loading
    10,000 of them as aware datetimes (Django's loader) cost ~6 µs a row."""
    stored: dict[tuple, set[int]] = {}
    for (instrument_id, timeframe), (first, last, count) in spans.items():
        cap = 2 * count + 100
        cursor.execute(
            "SELECT (extract(epoch FROM ts) * 1000000)::bigint FROM marketdata_bar "
            "WHERE instrument_id = %s AND timeframe = %s AND ts >= %s AND ts <= %s "
            "LIMIT %s",
            [instrument_id, timeframe, first, last, cap + 1],
        )
        found = cursor.fetchall()
        if len(found) > cap:
            return None
        if found:
            stored[(instrument_id, timeframe)] = {us for (us,) in found}
    if not stored:
        return rows
    none: set[int] = set()
    epoch, micro = _EPOCH, _MICROSECOND
    try:
        return [
            row
            for row in rows
            if (row[2] - epoch) // micro not in stored.get(row[:2], none)
        ]
    except TypeError:  # a naive ts: left to INSERT … ON CONFLICT
        return None


def _staging_table(cursor) -> None:
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bar_staging "
        "(LIKE marketdata_bar INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )


def upsert_via_staging(
    cursor, rows: Iterable[tuple], *, tail: tuple[str, str], replace: bool
) -> int:
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
    rows_write(cursor, table="bar_staging", rows=rows, tail=tail)
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
    cursor, *, table: str, rows: Iterable[tuple], tail: tuple[str, str]
) -> None:
    """Write `rows` (tuples in BAR_COLUMNS order without the `tail`, which
    is provider and origin) into `table` in bulk."""
    names = ", ".join(BAR_COLUMNS)
    if copy_usable(cursor):
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for chunk, text in copy_text(rows, tail):
                if text is None:
                    for row in chunk:
                        copy.write_row(row + tail)
                else:
                    copy.write(text)
        return
    one = "(" + ", ".join(["%s"] * len(BAR_COLUMNS)) + ")"
    rows = iter(rows)
    while batch := list(islice(rows, INSERT_BATCH)):
        cursor.execute(
            f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * len(batch)),
            [value for row in batch for value in row + tail],
        )


# --- COPY text --------------------------------------------------------------
_HOUR_MINUTE = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
_SECOND = [f"{s:02d}" for s in range(60)]
_DAYS: dict[int, str] = {}  # days since 1970 -> "YYYY-MM-DD "
_NULL = "\\N"
_NULL_FIELD = "\t\\N"  # vwap and trade_count, the nullable ones, are inner


def _day(days: int) -> str:
    if len(_DAYS) > 100_000:
        _DAYS.clear()
    day = _EPOCH + timedelta(days=days)
    text = _DAYS[days] = f"{day.year:04d}-{day.month:02d}-{day.day:02d} "
    return text


def _lines(rows: list[tuple], tail: str) -> str:
    """COPY text lines; TypeError for a row that is not plain (a naive or
    non-`datetime` ts, a non-str timeframe)."""
    days, hour_minute, second, null, epoch = _DAYS, _HOUR_MINUTE, _SECOND, _NULL, _EPOCH
    out = []
    for instrument_id, timeframe, ts, o, h, lo, c, v, vwap, count in rows:
        if type(ts) is not datetime:
            raise TypeError(ts)
        since = ts - epoch  # naive: TypeError
        s = since.seconds
        us = since.microseconds
        out.append(
            "\t".join(
                (
                    str(instrument_id),
                    timeframe,
                    (days.get(since.days) or _day(since.days))
                    + hour_minute[s // 60]
                    + second[s % 60]
                    + (f".{us:06d}+00" if us else "+00"),
                    str(o),
                    str(h),
                    str(lo),
                    str(c),
                    str(v),
                    null if vwap is None else str(vwap),
                    null if count is None else str(count),
                    tail,
                )
            )
        )
    return "".join(out)


def copy_text(
    rows: Iterable[tuple], tail: tuple[str, str]
) -> Iterator[tuple[list[tuple], str | None]]:
    """(chunk of rows, its COPY text lines) per COPY_CHUNK rows; the text is
    None where a value needs psycopg's own dumper (see the module docstring):
    a row that is not plain, text holding a tab, line break, backslash other
    than NULL's, or a Decimal sNaN (psycopg sends NaN)."""
    end = "\t".join(tail) + "\n"
    rows = iter(rows)
    while chunk := list(islice(rows, COPY_CHUNK)):
        try:
            text = _lines(chunk, end)
        except TypeError:
            yield chunk, None
            continue
        n = len(chunk)
        plain = (
            text.count("\t") == 11 * n
            and text.count("\n") == n
            and text.count("\\") == text.count(_NULL_FIELD)
            and "\r" not in text
            and "sNaN" not in text
        )
        yield chunk, text if plain else None
