"""DDL for the bar table: a TimescaleDB hypertable when the extension is
available, native range partitioning by time on plain PostgreSQL.

Both layouts keep the primary key (instrument_id, timeframe, ts), which serves
every per-instrument range read; a BRIN index on ts serves retention and
cross-instrument scans cheaply.
"""

from __future__ import annotations

from django.conf import settings

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


def timescale_available(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return cursor.fetchone() is not None


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
        if settings.BAR_RETENTION_DAYS:
            cursor.execute(
                "SELECT add_retention_policy('marketdata_bar', %s::interval)",
                [f"{settings.BAR_RETENTION_DAYS} days"],
            )
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
