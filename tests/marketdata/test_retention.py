"""BAR_RETENTION_DAYS deletes 1-minute bars older than the limit and nothing
else: hourly and daily bars, the rollups and the charts built on them stay.
The same planting runs on the TimescaleDB engine (tests/timescale)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from core.reclaim import Reclaimer
from marketdata.bar_storage import timescale_problem
from marketdata.models import Instrument
from marketdata.retention import bars_retention_apply
from marketdata.rollups import rollups_refresh
from marketdata.selectors import bars_resampled
from marketdata.services import bars_upsert
from tests.marketdata.history.conftest import make_minutes
from tests.timescale.engine import ROOT

pytestmark = pytest.mark.django_db


def counts(now) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT timeframe, ts < %s, count(*) FROM marketdata_bar GROUP BY 1, 2",
            [now - timedelta(days=1)],
        )
        bars = {(tf, "old" if old else "new"): n for tf, old, n in cursor.fetchall()}
        cursor.execute(
            "SELECT timeframe, ts, open, high, low, close, volume, minutes "
            "FROM marketdata_bar_rollup ORDER BY 1, 2"
        )
        return {"bars": bars, "rollups": cursor.fetchall()}


def plant(now) -> dict:
    """Across a 1-day limit: 36 hours of BTC/USD minutes (12 of them older
    than the limit), stored hourly bars and daily bars from months ago and
    from today, rollups refreshed. Returns what the charts show."""
    btc = Instrument.objects.get(symbol="BTC/USD")
    first = now - timedelta(hours=36)
    minutes = [first + timedelta(minutes=i) for i in range(36 * 60)]
    bars_upsert(rows=make_minutes(instrument=btc, minutes=minutes), provider="sim")
    coarse = []
    for i in range(48):
        coarse.append((btc.id, "1h", now - timedelta(days=90, hours=i), *_ohlc(i)))
    for i in range(20):
        coarse.append((btc.id, "1d", _day(now) - timedelta(days=200 + i), *_ohlc(i)))
    bars_upsert(rows=coarse, provider="file", origin="file")
    rollups_refresh(
        instrument_id=btc.id, start=first, end=now, asset_class=btc.asset_class
    )
    return charts(btc, now)


def _day(now):
    return now.replace(hour=0, minute=0)


def _ohlc(i: int) -> tuple:
    p = Decimal(300 + i)
    return (p, p + 3, p - 2, p + 1, Decimal(50 + i), None, 5)


def charts(btc, now) -> dict:
    return {
        tf: bars_resampled(
            instrument=btc,
            timeframe=tf,
            start=now - timedelta(days=400),
            end=now + timedelta(hours=1),
            limit=10_000,
        )
        for tf in ("1h", "1d")
    }


def check_retention(now) -> None:
    """Plant, apply retention with a 1-day limit in small batches, and check
    exactly what remains."""
    btc = Instrument.objects.get(symbol="BTC/USD")
    shown = plant(now)
    before = counts(now)
    assert before["bars"][("1m", "old")] == 12 * 60
    with override_settings(BAR_RETENTION_DAYS=1):
        report = bars_retention_apply(now=now, batch=200, limit=500)
        assert (report.deleted, report.complete) == (500, False)
        report = bars_retention_apply(now=now, batch=200)
        assert (report.deleted, report.complete) == (12 * 60 - 500, True)
        after = counts(now)
        # Minutes older than the limit are gone, nothing else.
        assert ("1m", "old") not in after["bars"]
        assert after["bars"] == {
            k: v for k, v in before["bars"].items() if k != ("1m", "old")
        }
        assert after["rollups"] == before["rollups"]
        assert charts(btc, now) == shown
        # A backfill of one old hour recomputes that hour only: the day it
        # belongs to keeps its rollup of minutes that are gone now.
        hour = (now - timedelta(hours=30)).replace(minute=0)
        rows = [
            r for r in make_minutes(instrument=btc, minutes=_mins(now)) if r[2] >= hour
        ]
        bars_upsert(rows=rows[:60], provider="sim")
        rollups_refresh(
            instrument_id=btc.id,
            start=hour - timedelta(minutes=10),
            end=hour + timedelta(minutes=70),
            asset_class=btc.asset_class,
        )
        assert counts(now)["rollups"] == before["rollups"]
        assert charts(btc, now) == shown


def _mins(now):
    first = now - timedelta(hours=36)
    return [first + timedelta(minutes=i) for i in range(36 * 60)]


def test_retention_deletes_old_minutes_only(instruments):
    check_retention(timezone.now().replace(second=0, microsecond=0))


def test_retention_off_keeps_everything(instruments):
    now = timezone.now().replace(second=0, microsecond=0)
    plant(now)
    before = counts(now)
    with override_settings(BAR_RETENTION_DAYS=0):
        assert bars_retention_apply(now=now) is None
    assert counts(now) == before


def test_the_reclaimer_applies_retention(instruments):
    now = timezone.now().replace(second=0, microsecond=0)
    plant(now)
    reclaimer = Reclaimer(
        services=["marketdata.retention.bars_retention_reclaim"], every=30
    )
    with override_settings(BAR_RETENTION_DAYS=1):
        (report,) = reclaimer.once().values()
    # The reclaimer's clock is the wall's: the minute at the limit may go too.
    assert report.complete and report.deleted in (12 * 60, 12 * 60 + 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE timeframe = '1m' AND ts < %s), "
            "count(*) FILTER (WHERE timeframe <> '1m') FROM marketdata_bar",
            [report.cutoff],
        )
        assert cursor.fetchone() == (0, 48 + 20)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("value", ["-1", "0.5", "ten"])
def test_a_retention_below_one_day_is_refused_at_start(value):
    result = manage("check", BAR_RETENTION_DAYS=value)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Configuration error: BAR_RETENTION_DAYS={value!r} is refused: give whole "
        "days of 1-minute bars to keep, at least 1 (0 or unset keeps them all)."
    ]


def test_timescale_required_on_a_server_without_it_stops_migrate_in_one_line():
    name = "tapeline_tsdb_require"
    settings = connection.settings_dict
    url = (
        f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}/"
        f"{name}"
    )
    subprocess.run(
        ["dropdb", "-h", settings["HOST"], "-U", settings["USER"], "--if-exists", name],
        check=True,
    )
    subprocess.run(
        ["createdb", "-h", settings["HOST"], "-U", settings["USER"], name], check=True
    )
    try:
        result = manage("migrate", "--noinput", DATABASE_URL=url, TIMESCALE="require")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1
        assert lines == [
            "TimescaleUnusable: TIMESCALE=require, but this PostgreSQL server has no "
            "timescaledb extension: install TimescaleDB 2.x on it, or set "
            "TIMESCALE=auto to store bars in plain PostgreSQL partitions."
        ]
        check = subprocess.run(
            [
                "psql",
                "-h",
                settings["HOST"],
                "-U",
                settings["USER"],
                "-d",
                name,
                "-tAc",
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert check.stdout.strip() == "0"  # refused before changing anything
    finally:
        subprocess.run(
            [
                "dropdb",
                "-h",
                settings["HOST"],
                "-U",
                settings["USER"],
                "--if-exists",
                name,
            ]
        )


def test_an_older_timescale_major_is_refused():
    problem = timescale_problem(mode="auto", available="1.7.5", installed=None)
    assert problem.startswith("TimescaleDB 1.7.5 on this server is too old")
    assert timescale_problem(mode="auto", available="2.23.0", installed=None) is None
    assert timescale_problem(mode="auto", available=None, installed=None) is None
    assert timescale_problem(mode="off", available="1.7.5", installed=None) is None
