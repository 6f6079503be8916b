"""`rollups_refresh_many`, the stream worker's refresh of a minute's
instruments, leaves exactly the rollup rows that `rollups_refresh` of each
instrument in turn leaves, with one DELETE and one INSERT per group of
instruments whose buckets and bounds match, and takes its instruments' locks
in id order."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketdata.calendar import expected_minutes
from marketdata.rollups import (
    ROLLUP_LOCK,
    RollupResult,
    rollups_refresh,
    rollups_refresh_many,
)
from marketdata.services import bars_upsert
from tests.marketdata.history.conftest import make_minutes

FIRST = datetime(2024, 11, 25, tzinfo=UTC)
LAST = datetime(2024, 11, 28, tzinfo=UTC)  # Thanksgiving: no session
NY_MIDNIGHT = datetime(2024, 11, 27, 5, tzinfo=UTC)
CUTOFF = datetime(2024, 11, 27, 2, tzinfo=UTC)
COLUMNS = (
    "instrument_id, timeframe, ts, open, high, low, close, volume, trade_count, minutes"
)


def plant(instruments) -> tuple[dict, dict]:
    """Minutes of two equities, an ETF and two crypto pairs over three days,
    equities also outside the session around a New York midnight, and a stale
    rollup row every hour of both timeframes (those of buckets without
    minutes must go, those outside the refreshed buckets stay). Returns the
    spans of a write and the asset classes: AAPL, MSFT and BTC/USD wrote the
    same minutes, SPY and ETH/USD others."""
    equity = list(expected_minutes("equity", FIRST, LAST))
    equity += [NY_MIDNIGHT + timedelta(minutes=i) for i in range(-15, 15)]
    crypto = [FIRST + timedelta(minutes=i) for i in range(3 * 1440) if i % 97 != 5]
    chosen = {
        "AAPL": equity,
        "MSFT": equity,
        "SPY": equity,
        "BTC/USD": crypto,
        "ETH/USD": crypto,
    }
    for seed, (symbol, minutes) in enumerate(chosen.items()):
        rows = make_minutes(
            instrument=instruments[symbol], minutes=sorted(minutes), seed=seed
        )
        bars_upsert(rows=rows, provider="test")
    ids = [instruments[symbol].id for symbol in chosen]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO marketdata_bar_rollup SELECT id, tf, ts, -1, -1, -1, -1, 0, "
            "NULL, 0 FROM unnest(%s::bigint[]) AS id, unnest(array['1h', '1d']) AS tf, "
            "generate_series(%s::timestamptz, %s, interval '1 hour') AS ts",
            [ids, FIRST - timedelta(days=1), LAST + timedelta(days=1)],
        )
    written = (
        datetime(2024, 11, 26, 18, 7, tzinfo=UTC),
        datetime(2024, 11, 27, 15, 43, tzinfo=UTC),
    )
    spans = {
        "AAPL": written,
        "MSFT": written,
        "BTC/USD": written,
        "SPY": (datetime(2024, 11, 27, 14, 2, tzinfo=UTC), written[1]),
        # Both edges before the cutoff: with retention, its edge buckets stay.
        "ETH/USD": (datetime(2024, 11, 25, 22, 31, tzinfo=UTC), datetime(2024, 11, 27, 1, 13, tzinfo=UTC)),
    }  # fmt: skip
    return (
        {instruments[s].id: span for s, span in spans.items()},
        {instruments[s].id: instruments[s].asset_class for s in spans},
    )


def rollup_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM marketdata_bar_rollup ORDER BY 1, 2, 3")
        return cursor.fetchall()


def rollup_rows_put(rows: list[tuple]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM marketdata_bar_rollup")
        cursor.executemany(
            f"INSERT INTO marketdata_bar_rollup ({COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "retention, groups",
    [
        # 1h: AAPL+MSFT+BTC, SPY, ETH; 1d: AAPL+MSFT, BTC, SPY, ETH
        (False, 7),
        # The cutoff moves AAPL's and MSFT's first day to SPY's: 1d AAPL+MSFT+SPY
        (True, 6),
    ],
)
def test_a_batch_leaves_what_refreshing_each_instrument_leaves(
    instruments, settings, monkeypatch, retention, groups
):
    if retention:  # the cutoff falls inside the spans
        settings.BAR_RETENTION_DAYS = 1
        monkeypatch.setattr(timezone, "now", lambda: CUTOFF + timedelta(days=1))
    spans, classes = plant(instruments)
    planted = rollup_rows()
    results = [
        rollups_refresh(
            instrument_id=instrument_id,
            asset_class=classes[instrument_id],
            start=start,
            end=end,
        )
        for instrument_id, (start, end) in spans.items()
    ]
    each = rollup_rows()
    rollup_rows_put(planted)

    with CaptureQueriesContext(connection) as queries:
        result = rollups_refresh_many(spans=spans, asset_classes=classes)
    assert rollup_rows() == each
    assert result == RollupResult(
        hours=sum(r.hours for r in results), days=sum(r.days for r in results)
    )
    # Not vacuous: every instrument's stale rows of both timeframes were
    # replaced in the refreshed buckets and stayed outside them.
    every = {(i, tf) for i in spans for tf in ("1h", "1d")}
    assert {row[:2] for row in set(planted) - set(each)} == every
    assert {row[:2] for row in set(planted) & set(each)} == every
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert statements.count("DELETE") == statements.count("INSERT") == groups


@pytest.mark.transactional
def test_a_batch_takes_the_locks_of_its_instruments_in_id_order():
    """Waiting for an instrument's lock, a batch holds the locks of smaller
    ids only: refreshes of overlapping instruments cannot deadlock."""
    spans = dict.fromkeys([30, 10, 20], (CUTOFF, CUTOFF + timedelta(minutes=1)))
    errors = []

    def refresh():
        try:
            rollups_refresh_many(
                spans=spans, asset_classes=dict.fromkeys(spans, "crypto")
            )
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    batch = threading.Thread(target=refresh)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 20)", [ROLLUP_LOCK])
        batch.start()
        held = None
        deadline = time.monotonic() + 10
        while held is None and not errors and time.monotonic() < deadline:
            cursor.execute(
                "SELECT array_agg(held.objid ORDER BY held.objid) FROM pg_locks waiting "
                "JOIN pg_locks held ON held.pid = waiting.pid AND held.granted "
                "AND held.locktype = 'advisory' AND held.classid = %s::oid "
                "WHERE waiting.locktype = 'advisory' AND waiting.classid = %s::oid "
                "AND waiting.objid = 20 AND NOT waiting.granted",
                [ROLLUP_LOCK, ROLLUP_LOCK],
            )
            held = cursor.fetchone()[0]
            time.sleep(0.02)
    batch.join(timeout=10)
    assert not errors and not batch.is_alive()
    assert held == [10]
