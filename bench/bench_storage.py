"""Bulk bar storage: the project's idempotent COPY path (`bars_upsert`) against
Django `bulk_create(..., ignore_conflicts=True)` on the same rows, same run.

    python -m bench.bench_storage [--rows 300000]

Rows are 1-minute bars with numeric(20, 8) prices, written in pages of
10,000 (a provider page). Figures: fresh range (nothing stored), re-run (all
stored: the idempotent case), half overlap; then bulk_create on the same rows.
Then where the time goes, per stage of `bars_upsert` on a fresh range
(`marketdata.bar_copy`: building the rows, the existence check, the COPY, the
commit) and on a re-run, beside a bare COPY of the same rows (no checks, one
transaction: the ceiling) and the client-side encoding alone (COPY into an
unindexed, unlogged temporary table).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench._django import setup

PAGE = 10_000
SYMBOL = "AAPL"


def make_rows(instrument_id: int, count: int) -> list[tuple]:
    rng = random.Random(5)
    start = datetime(2031, 1, 1, tzinfo=UTC)
    price = Decimal("100.00")
    rows = []
    cent = Decimal("0.01")
    for i in range(count):
        o = price
        c = o + rng.randint(-20, 20) * cent
        h = max(o, c) + rng.randint(0, 9) * cent
        lo = min(o, c) - rng.randint(0, 9) * cent
        v = Decimal(rng.randint(100, 90000))
        rows.append(
            (
                instrument_id,
                "1m",
                start + timedelta(minutes=i),
                o,
                h,
                lo,
                c,
                v,
                None,
                None,
            )
        )
        price = c
    return rows


def pages(rows):
    for i in range(0, len(rows), PAGE):
        yield rows[i : i + PAGE]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    setup()
    from marketdata.models import Bar, Instrument
    from marketdata.services import bars_upsert

    instrument, _ = Instrument.objects.get_or_create(
        symbol=SYMBOL, defaults={"name": SYMBOL}
    )
    scope = Bar.objects.filter(
        instrument=instrument, ts__gte=datetime(2031, 1, 1, tzinfo=UTC)
    )
    scope.delete()
    rows = make_rows(instrument.id, args.rows)
    n = len(rows)

    def timed(label, fn):
        started = time.perf_counter()
        written = fn()
        seconds = time.perf_counter() - started
        rate = n / seconds
        print(
            f"{label:<48} {n:>9,} rows {seconds:7.2f} s {rate:>10,.0f} rows/s  (written {written:,})"
        )
        return rate

    ours = timed(
        "bars_upsert, empty range (COPY direct)",
        lambda: sum(bars_upsert(rows=p, provider="bench").written for p in pages(rows)),
    )
    rerun = timed(
        "bars_upsert, re-run (every row stored)",
        lambda: sum(bars_upsert(rows=p, provider="bench").written for p in pages(rows)),
    )
    scope.filter(ts__gte=rows[n // 2][2]).delete()
    timed(
        "bars_upsert, half stored (missing rows copied)",
        lambda: sum(bars_upsert(rows=p, provider="bench").written for p in pages(rows)),
    )
    scope.delete()

    fields = (
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
    )

    def django_bulk():
        objs = (
            Bar(**dict(zip(fields, r, strict=True)), provider="bench", origin="history")
            for r in rows
        )
        total = 0
        batch = []
        for obj in objs:
            batch.append(obj)
            if len(batch) == PAGE:
                total += len(Bar.objects.bulk_create(batch, ignore_conflicts=True))
                batch = []
        if batch:
            total += len(Bar.objects.bulk_create(batch, ignore_conflicts=True))
        return total

    peer = timed("Django bulk_create(ignore_conflicts=True), empty", django_bulk)
    peer_rerun = timed("Django bulk_create(ignore_conflicts=True), re-run", django_bulk)
    assert scope.count() == n
    scope.delete()
    stages(instrument, rows, scope)
    print()
    print(f"ratio, empty range: {ours / peer:.1f}x bulk_create (target >= 10x)")
    print(f"ratio, re-run:      {rerun / peer_rerun:.1f}x bulk_create")
    print(
        f"idempotent path:    {ours:,.0f} rows/s fresh, {rerun:,.0f} rows/s re-run (target >= 300,000)"
    )


def stages(instrument, rows, scope) -> None:
    """Seconds per stage of `bars_upsert`, fresh and re-run, per 1,000 rows."""
    from django.db import connection, transaction

    from marketdata.bar_copy import latest_rows, missing_rows, rows_write

    n = len(rows)
    tail = ("bench", "history")

    def run():
        spent = {"rows": 0.0, "check": 0.0, "copy": 0.0, "commit": 0.0}
        for page in pages(rows):
            t0 = time.perf_counter()
            latest = latest_rows(page, tail=tail)
            t1 = time.perf_counter()
            atomic = transaction.atomic()
            atomic.__enter__()
            with connection.cursor() as cursor:
                missing = missing_rows(cursor, latest)
                t2 = time.perf_counter()
                assert missing is not None  # one page of fresh or stored rows
                if missing:
                    with transaction.atomic():
                        rows_write(cursor, table="marketdata_bar", rows=missing)
            t3 = time.perf_counter()
            atomic.__exit__(None, None, None)
            t4 = time.perf_counter()
            for name, seconds in zip(
                spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True
            ):
                spent[name] += seconds
        return spent

    scope.delete()
    fresh = run()
    rerun = run()
    scope.delete()

    def bare(table: str) -> float:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            rows_write(cursor, table=table, rows=[r + tail for r in rows])
        return time.perf_counter() - started

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_encode "
            "(LIKE marketdata_bar INCLUDING DEFAULTS)"
        )
        cursor.execute("TRUNCATE bench_encode")
    ceiling = bare("marketdata_bar")
    scope.delete()
    encode = bare("bench_encode")
    print()
    print(f"where the time goes (s per {n:,} rows; rows/s of the stage alone)")
    print(f"{'stage':<44} {'fresh':>14} {'re-run':>14}")
    for name, label in (
        ("rows", "latest_rows: dedupe, provider/origin"),
        ("check", "missing_rows: existence check"),
        ("copy", "COPY (savepoint, encode, server insert)"),
        ("commit", "commit"),
    ):
        cells = "".join(
            f" {s[name]:6.2f}s {n / max(s[name], 1e-9) / 1000:>5,.0f}k"
            for s in (fresh, rerun)
        )
        print(f"{label:<44}{cells}")
    total_fresh, total_rerun = sum(fresh.values()), sum(rerun.values())
    print(f"{'total':<44} {total_fresh:6.2f}s {n / total_fresh / 1000:>5,.0f}k"
          f" {total_rerun:6.2f}s {n / total_rerun / 1000:>5,.0f}k")  # fmt: skip
    print(f"{'bare COPY into marketdata_bar (ceiling)':<44} {ceiling:6.2f}s"
          f" {n / ceiling / 1000:>5,.0f}k")  # fmt: skip
    print(f"{'client encoding alone (COPY to temp table)':<44} {encode:6.2f}s"
          f" {n / encode / 1000:>5,.0f}k")  # fmt: skip
    print(f"fresh bars_upsert reaches {ceiling / total_fresh:.0%} of the bare COPY")


if __name__ == "__main__":
    main()
