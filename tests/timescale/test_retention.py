"""Retention on TimescaleDB: the same planting and checks as on plain
PostgreSQL (tests/marketdata/test_retention.py), with every chunk compressed
first, and the continuous aggregate's refresh policy run after the delete
(it must not recompute hours whose minutes retention removed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from marketdata.models import Instrument
from marketdata.retention import bars_retention_apply
from marketdata.rollups import TIMESCALE_HOURLY_VIEW
from tests.marketdata.test_retention import charts, check_retention
from tests.timescale.test_storage import compress_all, query, run_cagg_policy

pytestmark = [pytest.mark.timescale, pytest.mark.django_db]


def cagg_hours(before) -> list[tuple]:
    return query(
        f"SELECT ts, open, high, low, close, volume FROM {TIMESCALE_HOURLY_VIEW} "
        "WHERE ts < %s ORDER BY ts",
        [before],
    )


def test_retention_on_compressed_chunks_keeps_hours_days_and_the_aggregate(
    on_engine,
):
    now = timezone.now().replace(second=0, microsecond=0)
    with on_engine():
        with override_settings(BAR_RETENTION_DAYS=1):
            run_cagg_policy()
            btc = Instrument.objects.get(symbol="BTC/USD")
            from tests.marketdata.test_retention import plant

            shown = plant(now)
            old_hours = cagg_hours(now - timedelta(days=1))
            assert len(old_hours) >= 12  # materialized by the write's refresh
            assert compress_all() > 0
            report = bars_retention_apply(now=now, batch=300)
            assert report.deleted == 12 * 60 and report.complete
            # The policy now refreshes 23 hours back, inside the limit.
            assert query(
                "SELECT config->>'start_offset' FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_refresh_continuous_aggregate'"
            ) == [("23:00:00",)]
            run_cagg_policy()
            assert cagg_hours(now - timedelta(days=1)) == old_hours
            assert charts(btc, now) == shown
            assert query(
                "SELECT count(*) FROM marketdata_bar WHERE timeframe = '1m' "
                "AND ts < %s",
                [report.cutoff],
            ) == [(0,)]
            assert query(
                "SELECT timeframe, count(*) FROM marketdata_bar "
                "WHERE timeframe <> '1m' GROUP BY 1 ORDER BY 1"
            ) == [("1d", 20), ("1h", 48)]
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM marketdata_bar")
            cursor.execute("DELETE FROM marketdata_bar_rollup")


def test_the_shared_retention_checks_pass_on_the_engine(on_engine):
    with on_engine():
        check_retention(timezone.now().replace(second=0, microsecond=0))
