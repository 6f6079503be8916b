"""DDL for the bar table: a TimescaleDB hypertable when the extension is
available, native range partitioning by time on plain PostgreSQL.

`settings.TIMESCALE` decides (auto: when the server offers TimescaleDB 2.x;
require: migrate refuses a server without it, in one line; off: partitions).

Both layouts keep the primary key (instrument_id, timeframe, ts), which serves
every per-instrument range read; a BRIN index on ts serves retention and
cross-instrument scans cheaply. Retention (minutes only) is
`marketdata.retention`, never a Timescale retention policy.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError

FIRST_PARTITION_YEAR = 1990
LAST_PARTITION_YEAR = 2045

COLUMNS_SQL = """
    instrument_id bigint NOT NULL
        REFERENCES marketdata_instrument (id) ON DELETE CASCADE,
    timeframe varchar(3) NOT NULL,
    ts timestamptz NOT NULL,
    open numeric(20, 8) NOT NULL,
    high numeric(20, 8) NOT NULL,
    low numeric(20, 8) NOT NULL,
    close numeric(20, 8) NOT NULL,
    volume numeric(28, 8) NOT NULL DEFAULT 0,
    vwap numeric(20, 8),
    trade_count integer,
    provider varchar(16) NOT NULL,
    origin varchar(8) NOT NULL,
    revision smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (instrument_id, timeframe, ts)
"""


MIN_TIMESCALE_MAJOR = 2


class TimescaleUnusable(CommandError):
    """The server cannot give what settings.TIMESCALE asks for; `migrate`
    prints it as one line (CommandError) and stops before changing anything."""


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def timescale_problem(
    *, mode: str, available: str | None, installed: str | None
) -> str | None:
    """Why the bar storage cannot be created or kept as `mode` (settings'
    TIMESCALE) asks, given the server's timescaledb versions; None when it can."""
    if mode == "off":
        return None
    if available is None and installed is None:
        if mode == "require":
            return (
                "TIMESCALE=require, but this PostgreSQL server has no timescaledb "
                "extension: install TimescaleDB 2.x on it, or set TIMESCALE=auto "
                "to store bars in plain PostgreSQL partitions."
            )
        return None
    version = installed or available
    if _major(version) < MIN_TIMESCALE_MAJOR:
        return (
            f"TimescaleDB {version} on this server is too old: Tapeline needs "
            f"{MIN_TIMESCALE_MAJOR}.x (ALTER EXTENSION timescaledb UPDATE after "
            "upgrading the package), or set TIMESCALE=off to use plain partitions."
        )
    return None


def timescale_check(cursor) -> bool:
    """Whether the bar table is (to be) a hypertable; raises TimescaleUnusable
    when settings.TIMESCALE cannot be honoured (checked before every migrate)."""
    cursor.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions "
        "WHERE name = 'timescaledb'"
    )
    row = cursor.fetchone()
    available, installed = row if row else (None, None)
    cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    found = cursor.fetchone()
    installed = found[0] if found else installed
    problem = timescale_problem(
        mode=settings.TIMESCALE, available=available, installed=installed
    )
    if problem:
        raise TimescaleUnusable(problem)
    return settings.TIMESCALE != "off" and available is not None


def timescale_available(cursor) -> bool:
    return timescale_check(cursor)


def timescale_enabled(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    return cursor.fetchone() is not None


def create_bar_table(cursor) -> str:
    """Create `marketdata_bar`; returns "timescale" or "partitioned"."""
    if timescale_available(cursor):
        cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        cursor.execute(f"CREATE TABLE marketdata_bar ({COLUMNS_SQL})")
        cursor.execute(
            "SELECT create_hypertable('marketdata_bar', 'ts', "
            "chunk_time_interval => interval '7 days')"
        )
        cursor.execute(
            "ALTER TABLE marketdata_bar SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'instrument_id, timeframe', "
            "timescaledb.compress_orderby = 'ts DESC')"
        )
        cursor.execute(
            "SELECT add_compression_policy('marketdata_bar', %s::interval)",
            [f"{settings.BAR_COMPRESS_AFTER_DAYS} days"],
        )
        # No add_retention_policy: it drops whole chunks, hourly and daily bars
        # with the minutes. BAR_RETENTION_DAYS is marketdata.retention's job.
        return "timescale"

    cursor.execute(
        f"CREATE TABLE marketdata_bar ({COLUMNS_SQL}) PARTITION BY RANGE (ts)"
    )
    for year in range(FIRST_PARTITION_YEAR, LAST_PARTITION_YEAR + 1):
        cursor.execute(
            f"CREATE TABLE marketdata_bar_y{year} PARTITION OF marketdata_bar "
            f"FOR VALUES FROM ('{year}-01-01 00:00+00') TO ('{year + 1}-01-01 00:00+00')"
        )
    cursor.execute(
        "CREATE TABLE marketdata_bar_other PARTITION OF marketdata_bar DEFAULT"
    )
    cursor.execute(
        "CREATE INDEX marketdata_bar_ts_brin ON marketdata_bar USING brin (ts)"
    )
    return "partitioned"


def drop_bar_table(cursor) -> None:
    cursor.execute("DROP TABLE IF EXISTS marketdata_bar CASCADE")
