"""Bulk bar storage: the project's idempotent COPY path (`bars_upsert`) against
Django `bulk_create(..., ignore_conflicts=True)` on the same rows, same run.

    python -m bench.bench_storage [--rows 300000]

Rows are 1-minute bars with numeric(20, 8) prices, written in pages of
10,000 (a provider page). Figures: fresh range (nothing stored), re-run (all
stored: the idempotent case), half stored; then bulk_create on the same rows.
Then where the time goes, per stage of `bars_upsert` (`marketdata.bar_copy`),
fresh and re-run, beside a bare COPY of the same rows (no checks, one
transaction: the ceiling). The stages run one after another there, while
`bars_upsert` encodes the next COPY chunk as the server stores the last; the
server's own CPU per row is read from /proc when the server is local.

Each fresh phase writes a new instrument: rows deleted by an earlier phase
leave dead index entries on the same keys that every insert would check
(twice the server's time per row, measured), which a real fresh range never
has. Figures and their explanation: bench/PROFILE-storage.md.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench._django import setup

PAGE = 10_000
SYMBOL_PREFIX = "ZZBENCH"  # bench instruments, removed with their bars
TARGET_RATE = 300_000
TARGET_RATIO = 10.0


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


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def verdict(value: float, target: float, unit: str) -> str:
    digits = 1 if unit == "x" else 0
    shown = f"{value:,.{digits}f}{unit}"
    if value >= target:
        return f"met ({shown} >= {target:,.0f}{unit})"
    return f"NOT met by {target / value:.1f}x ({shown} < {target:,.0f}{unit})"


class Bench:
    def __init__(self, count: int) -> None:
        from marketdata.models import Instrument

        Instrument.objects.filter(symbol__startswith=SYMBOL_PREFIX).delete()
        self.count = count
        self.made = 0

    def instrument(self) -> int:
        """A new instrument: its keys were never stored (see the docstring)."""
        from marketdata.models import Instrument

        self.made += 1
        symbol = f"{SYMBOL_PREFIX}{chr(64 + self.made)}"
        return Instrument.objects.create(symbol=symbol, name=symbol).id

    def rows(self) -> list[tuple]:
        return make_rows(self.instrument(), self.count)

    def timed(self, label: str, fn) -> float:
        started = time.perf_counter()
        written = fn()
        seconds = time.perf_counter() - started
        rate = self.count / seconds
        print(
            f"{label:<50} {self.count:>9,} rows {seconds:7.2f} s "
            f"{rate:>10,.0f} rows/s  (written {written:,})",
            flush=True,
        )
        return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    setup()
    from marketdata.models import Bar, Instrument
    from marketdata.services import bars_upsert

    bench = Bench(args.rows)
    print(f"start: {load()}")

    def upsert_all(rows):
        return sum(bars_upsert(rows=p, provider="bench").written for p in pages(rows))

    rows = bench.rows()
    ours = bench.timed(
        "bars_upsert, empty range (COPY direct)", lambda: upsert_all(rows)
    )
    rerun = bench.timed(
        "bars_upsert, re-run (every row stored)", lambda: upsert_all(rows)
    )
    Bar.objects.filter(
        instrument_id=rows[0][0], ts__gte=rows[len(rows) // 2][2]
    ).delete()
    bench.timed(
        "bars_upsert, half stored (missing rows copied)", lambda: upsert_all(rows)
    )

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
    peer_rows = bench.rows()

    def django_bulk():
        total = 0
        for page in pages(peer_rows):
            objs = [
                Bar(
                    **dict(zip(fields, r, strict=True)),
                    provider="bench",
                    origin="history",
                )
                for r in page
            ]
            total += len(Bar.objects.bulk_create(objs, ignore_conflicts=True))
        return total

    peer = bench.timed("Django bulk_create(ignore_conflicts=True), empty", django_bulk)
    peer_rerun = bench.timed(
        "Django bulk_create(ignore_conflicts=True), re-run", django_bulk
    )
    print(f"after the peer: {load()}")
    fresh, again, ceiling, server = stages(bench)
    print()
    print(f"end: {load()}")
    print(
        f"ratio, empty range: {ours / peer:.1f}x bulk_create: {verdict(ours / peer, TARGET_RATIO, 'x')}"
    )
    print(f"ratio, re-run:      {rerun / peer_rerun:.1f}x bulk_create")
    print(f"fresh rows/s:       {verdict(ours, TARGET_RATE, ' rows/s')}")
    print(f"re-run rows/s:      {rerun:,.0f}")
    print(f"stage run, fresh:   {fresh:,.0f} rows/s; bare COPY ceiling {ceiling:,.0f} rows/s"
          f" ({fresh / ceiling:.0%} of it)")  # fmt: skip
    if server:
        print(f"server CPU per row, bare COPY: {server:.2f} us (alone it caps at "
              f"{1e6 / server:,.0f} rows/s per core)")  # fmt: skip
    Instrument.objects.filter(symbol__startswith=SYMBOL_PREFIX).delete()


def _server_cpu():
    """A function returning the backend's CPU seconds, or None when the
    server process is not readable here."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    tick = os.sysconf("SC_CLK_TCK")
    path = f"/proc/{pid}/stat"

    def read() -> float:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    try:
        read()
    except OSError:
        return None
    return read


def stages(bench: Bench) -> tuple[float, float, float, float | None]:
    """Seconds per stage of `bars_upsert`, fresh and re-run."""
    from django.db import connection, transaction

    from marketdata.bar_copy import (
        BAR_COLUMNS,
        bar_tuples,
        copy_text,
        latest_rows,
        missing_rows,
        rows_write,
    )

    n = bench.count
    tail = ("bench", "history")
    server_cpu = _server_cpu()
    copy_sql = f"COPY marketdata_bar ({', '.join(BAR_COLUMNS)}) FROM STDIN"
    names = ("rows", "check", "encode", "copy", "commit")

    def run(rows):
        """Wall seconds per stage, and client CPU seconds per stage (CPU
        moves less with the machine's load than wall time)."""
        wall = dict.fromkeys((*names, "server"), 0.0)
        cpu = dict.fromkeys(names, 0.0)
        for page in pages(rows):
            marks = [(time.perf_counter(), time.process_time())]
            latest, spans = latest_rows(bar_tuples(page))
            marks.append((time.perf_counter(), time.process_time()))
            atomic = transaction.atomic()
            atomic.__enter__()
            with connection.cursor() as cursor:
                missing = missing_rows(cursor, latest, spans)
                marks.append((time.perf_counter(), time.process_time()))
                assert missing is not None  # one page of fresh or stored rows
                chunks = list(copy_text(missing, tail))
                assert all(text is not None for _, text in chunks)
                marks.append((time.perf_counter(), time.process_time()))
                s0 = server_cpu() if server_cpu else 0.0
                if missing:
                    with transaction.atomic(), cursor.cursor.copy(copy_sql) as copy:
                        for _, text in chunks:
                            copy.write(text)
            s1 = server_cpu() if server_cpu else 0.0
            marks.append((time.perf_counter(), time.process_time()))
            atomic.__exit__(None, None, None)
            marks.append((time.perf_counter(), time.process_time()))
            laps = zip(names, marks, marks[1:], strict=False)
            for name, (w0, c0), (w1, c1) in laps:
                wall[name] += w1 - w0
                cpu[name] += c1 - c0
            wall["server"] += s1 - s0
        return wall, cpu

    rows = bench.rows()
    fresh, fresh_cpu = run(rows)
    rerun, rerun_cpu = run(rows)

    ceiling_rows = bench.rows()
    s0 = server_cpu() if server_cpu else 0.0
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        rows_write(cursor, table="marketdata_bar", rows=ceiling_rows, tail=tail)
    ceiling = time.perf_counter() - started
    server = (server_cpu() - s0) / n * 1e6 if server_cpu else None

    print()
    print(f"where the time goes, per {n:,} rows; {load()}")
    print("  wall s, rows/s of the stage alone, client CPU us/row")
    print(f"{'stage':<40} {'fresh':>23} {'re-run':>23}")
    for name, label in (
        ("rows", "bar_tuples + latest_rows: dedupe"),
        ("check", "missing_rows: existence check"),
        ("encode", "copy_text: COPY text"),
        ("copy", "COPY: savepoint, send, server insert"),
        ("commit", "commit"),
    ):
        cells = "".join(
            f" {w[name]:6.2f}s {n / max(w[name], 1e-9) / 1000:>6,.0f}k"
            f" {c[name] / n * 1e6:5.2f}us"
            for w, c in ((fresh, fresh_cpu), (rerun, rerun_cpu))
        )
        print(f"{label:<40}{cells}")
    total_fresh = sum(fresh[name] for name in names)
    total_rerun = sum(rerun[name] for name in names)
    cells = "".join(
        f" {total:6.2f}s {n / total / 1000:>6,.0f}k {sum(c.values()) / n * 1e6:5.2f}us"
        for total, c in ((total_fresh, fresh_cpu), (total_rerun, rerun_cpu))
    )
    print(f"{'total':<40}{cells}")
    if server_cpu:
        print(f"{'server CPU during the fresh COPY':<40} "
              f"{fresh['server'] / n * 1e6:23.2f}us")  # fmt: skip
    print(f"{'bare COPY into marketdata_bar (ceiling)':<40} {ceiling:6.2f}s"
          f" {n / ceiling / 1000:>6,.0f}k")  # fmt: skip
    return n / total_fresh, n / total_rerun, n / ceiling, server


if __name__ == "__main__":
    main()
