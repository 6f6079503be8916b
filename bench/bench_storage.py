"""Bulk bar storage: the project's idempotent COPY path (`bars_upsert`) against
Django `bulk_create(..., ignore_conflicts=True)` on the same rows, same run.

    python -m bench.bench_storage [--rows 300000]

Rows are 1-minute bars with numeric(20, 8) prices, written in pages of
10,000 (a provider page). Figures: fresh range (nothing stored), re-run (all
stored: the idempotent case), half overlap; then bulk_create on the same rows.
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
    print()
    print(f"ratio, empty range: {ours / peer:.1f}x bulk_create (target >= 10x)")
    print(f"ratio, re-run:      {rerun / peer_rerun:.1f}x bulk_create")
    print(
        f"idempotent path:    {ours:,.0f} rows/s fresh, {rerun:,.0f} rows/s re-run (target >= 300,000)"
    )


if __name__ == "__main__":
    main()
