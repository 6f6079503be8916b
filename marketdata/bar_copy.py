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
    mode = getattr(settings, "BAR_COPY", "auto")
    if mode in ("on", "off"):
        return mode == "on"
    key = _server_key(cursor)
    if key not in _COPY_USABLE:
        cursor.execute("SELECT version()")
        _COPY_USABLE[key] = "emscripten" not in cursor.fetchone()[0].lower()
    return _COPY_USABLE[key]


def rows_write(cursor, *, table: str, columns: tuple[str, ...], rows: Iterable[tuple]):
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
