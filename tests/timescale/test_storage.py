"""The Timescale branch of the bar storage, run on a real TimescaleDB engine:
the hypertable and its policies, bulk writes without COPY, and chart reads
that equal the plain-PostgreSQL path's on the same bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from marketdata.bar_copy import copy_usable
from marketdata.calendar import expected_minutes
from marketdata.models import Instrument
from marketdata.rollups import TIMESCALE_HOURLY_VIEW, rollups_refresh
from marketdata.selectors import bars_resampled
from marketdata.services import bars_upsert
from tests.marketdata.history.conftest import make_minutes

pytestmark = [pytest.mark.timescale, pytest.mark.django_db]


def query(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall() if cursor.description else []


def test_migrations_make_the_bar_table_a_compressed_hypertable(on_engine):
    with on_engine():
        assert query(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )[0][0].startswith("2.")
        assert query(
            "SELECT compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'marketdata_bar'"
        ) == [(True,)]
        settings = query(
            "SELECT attname, segmentby_column_index, orderby_column_index, "
            "orderby_asc FROM timescaledb_information.compression_settings "
            "WHERE hypertable_name = 'marketdata_bar' ORDER BY attname"
        )
        assert settings == [
            ("instrument_id", 1, None, None),
            ("timeframe", 2, None, None),
            ("ts", None, 1, False),
        ]
        jobs = dict(
            query(
                "SELECT proc_name, coalesce(hypertable_name, '') "
                "FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"
            )
        )
        assert jobs["policy_compression"] == "marketdata_bar"
        assert jobs["policy_refresh_continuous_aggregate"] == TIMESCALE_HOURLY_VIEW
        # Retention is marketdata.retention's (minutes only), never a policy
        # that drops whole chunks of hourly and daily bars.
        assert "policy_retention" not in jobs


def test_migration_removes_an_old_retention_policy(on_engine):
    with on_engine():
        call_command("migrate", "marketdata", "0008", verbosity=0)
        query("SELECT add_retention_policy('marketdata_bar', interval '30 days')")
        assert query(
            "SELECT count(*) FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention'"
        ) == [(1,)]
        call_command("migrate", "marketdata", verbosity=0)
        assert query(
            "SELECT count(*) FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention'"
        ) == [(0,)]


def _minute_rows(symbol: str, start: datetime, count: int, seed: int = 3):
    instrument = Instrument.objects.get(symbol=symbol)
    minutes = [start + timedelta(minutes=i) for i in range(count)]
    return make_minutes(instrument=instrument, minutes=minutes, seed=seed)


def test_bulk_writes_without_copy_on_the_engine(on_engine, monkeypatch):
    """COPY kills this engine's process: the storage layer must never send it
    there, and every write path still stores every row."""
    start = datetime(2025, 3, 3, tzinfo=UTC)
    with on_engine() as engine:
        with connection.cursor() as cursor:
            assert copy_usable(cursor) is False
        rows = _minute_rows("ETH/USD", start, 2500)
        first = bars_upsert(rows=rows, provider="simulator")  # straight insert
        again = bars_upsert(rows=rows, provider="simulator")  # nothing new
        changed = [r[:6] + (r[6] + Decimal("0.01"),) + r[7:] for r in rows[:1200]]
        replaced = bars_upsert(rows=changed, provider="simulator", replace=True)
        assert (first.written, again.written, replaced.written) == (2500, 0, 1200)
        assert query(
            "SELECT count(*), sum(revision) FROM marketdata_bar "
            "WHERE instrument_id = %s",
            [rows[0][0]],
        ) == [(2500, 1200)]
        assert engine.running


def test_plain_postgresql_still_copies(instruments, monkeypatch):
    """The fallback is for that engine only: PostgreSQL gets COPY."""
    sent: list[str] = []
    real_copy = psycopg.Cursor.copy

    def spy(self, statement, *args, **kwargs):
        sent.append(str(statement))
        return real_copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", spy)
    with connection.cursor() as cursor:
        assert copy_usable(cursor) is True
    rows = _minute_rows("ETH/USD", datetime(2025, 3, 3, tzinfo=UTC), 50)
    assert bars_upsert(rows=rows, provider="simulator").written == 50
    assert bars_upsert(rows=rows, provider="simulator", replace=True).written == 0
    assert sent == [
        "COPY marketdata_bar (instrument_id, timeframe, ts, open, high, low, close, "
        "volume, vwap, trade_count, provider, origin) FROM STDIN",
        "COPY bar_staging (instrument_id, timeframe, ts, open, high, low, close, "
        "volume, vwap, trade_count, provider, origin) FROM STDIN",
    ]


# --- reads: the same bars on both engines ------------------------------------
START = datetime(2025, 2, 3, tzinfo=UTC)  # a Monday
END = datetime(2025, 2, 12, tzinfo=UTC)


def plant() -> None:
    """Minutes of a 24/7 and an equity instrument, plus stored hourly and
    daily bars where no minutes are (a file import), rollups refreshed."""
    btc = Instrument.objects.get(symbol="BTC/USD")
    aapl = Instrument.objects.get(symbol="AAPL")
    btc_minutes = [START + timedelta(minutes=i) for i in range(4 * 1440)]
    aapl_minutes = list(expected_minutes("equity", START, START + timedelta(days=4)))
    bars_upsert(rows=make_minutes(instrument=btc, minutes=btc_minutes), provider="sim")
    bars_upsert(
        rows=make_minutes(instrument=aapl, minutes=aapl_minutes, seed=11),
        provider="sim",
    )
    coarse = []
    for instrument in (btc, aapl):
        for i in range(24 * 2):  # hourly bars on days 5-6 (no minutes there)
            ts = START + timedelta(days=5, hours=i)
            coarse.append((instrument.id, "1h", ts, *_ohlcv(i)))
        for i in range(2):  # daily bars on days 7-8
            ts = START + timedelta(days=7 + i, hours=5 if instrument is aapl else 0)
            coarse.append((instrument.id, "1d", ts, *_ohlcv(i + 100)))
    bars_upsert(rows=coarse, provider="file", origin="file")
    for instrument in (btc, aapl):
        rollups_refresh(
            instrument_id=instrument.id,
            start=START,
            end=END,
            asset_class=instrument.asset_class,
        )


def _ohlcv(i: int) -> tuple:
    base = Decimal(200 + i)
    return (base, base + 2, base - 1, base + 1, Decimal(1000 + i), None, 10 + i)


def chart_reads() -> dict:
    out = {}
    for symbol in ("BTC/USD", "AAPL"):
        instrument = Instrument.objects.get(symbol=symbol)
        for timeframe in ("1m", "5m", "15m", "1h", "1d"):
            rows = bars_resampled(
                instrument=instrument,
                timeframe=timeframe,
                start=START - timedelta(days=1),
                end=END,
                limit=100_000,
            )
            out[symbol, timeframe] = [tuple(row) for row in rows]
            out[symbol, timeframe, "float"] = bars_resampled(
                instrument=instrument,
                timeframe=timeframe,
                start=START,
                end=END,
                limit=300,
                as_float=True,
            )
    return out


def run_cagg_policy() -> None:
    """What TimescaleDB's scheduler does every five minutes."""
    (job,) = query(
        "SELECT job_id FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_refresh_continuous_aggregate'"
    )[0]
    query("CALL run_job(%s)", [job])


def compress_all() -> int:
    return len(
        query(
            "SELECT compress_chunk(c, if_not_compressed => true) "
            "FROM show_chunks('marketdata_bar') c"
        )
    )


def test_chart_reads_equal_plain_postgresql(instruments, on_engine):
    plant()
    plain = chart_reads()
    assert len(plain["BTC/USD", "1h"]) == 4 * 24 + 48
    assert (
        len(plain["AAPL", "1d"]) == 4 + 2 - 2 + 2
    )  # 2 minute days, 2 hour days, 2 daily
    with on_engine():
        # The refresh policy has run before the history arrives: the hours
        # loaded afterwards lie below the aggregate's watermark.
        recent = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=5)
        bars_upsert(rows=_minute_rows("SOL/USD", recent, 120), provider="sim")
        run_cagg_policy()
        assert query(f"SELECT count(*) FROM {TIMESCALE_HOURLY_VIEW}")[0][0] >= 2
        plant()
        assert chart_reads() == plain, "fresh"
        query(
            f"CALL refresh_continuous_aggregate('{TIMESCALE_HOURLY_VIEW}', NULL, NULL)"
        )
        assert query(f"SELECT count(*) FROM {TIMESCALE_HOURLY_VIEW}")[0][0] > 0
        assert chart_reads() == plain, "materialized"
        assert compress_all() > 0
        assert chart_reads() == plain, "compressed"
