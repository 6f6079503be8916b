"""Coverage checks: is every expected minute of a month stored?

    python -m bench.bench_coverage [--months 1] [--repeat 20]

Stores a month (or more) of 24/7 crypto minutes and times three ways to
decide whether the month is complete: the old count (wrong, for reference),
reading the stored timestamps into Python and comparing sets with the
calendar's, and `marketdata.coverage` (a count of stored minutes inside the
calendar's session windows, in SQL; what `range_covered` uses). Prints the
median of `--repeat` runs of each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from bench._django import setup


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--months", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    setup()
    from marketdata import calendar
    from marketdata.coverage import minutes_coverage
    from marketdata.models import Bar, Instrument
    from marketdata.services import bars_upsert, instruments_upsert
    from marketdata.universe import universe_rows

    instruments_upsert(rows=universe_rows())
    btc = Instrument.objects.get(symbol="BTC/USD")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = datetime(2024 + args.months // 12, args.months % 12 + 1, 1, tzinfo=UTC)
    expected = list(calendar.expected_minutes("crypto", start, end))
    Bar.objects.filter(instrument=btc, timeframe="1m").delete()
    bars_upsert(
        rows=[(btc.id, "1m", ts, 1, 1, 1, 1, 1, None, None) for ts in expected],
        provider="bench",
    )
    rows = Bar.objects.filter(instrument=btc, timeframe="1m", ts__gte=start, ts__lt=end)

    def by_count() -> bool:
        return rows.count() >= len(expected)

    def by_python_sets() -> bool:
        wanted = set(calendar.expected_minutes("crypto", start, end))
        return wanted <= set(rows.values_list("ts", flat=True))

    def by_sql() -> bool:
        return minutes_coverage(
            instrument_id=btc.id, asset_class="crypto", start=start, end=end
        ).complete

    assert by_count() and by_python_sets() and by_sql()
    print(f"{len(expected):,} minutes stored ({args.months} month(s) of 24/7)")
    results = {
        "count (old, wrong)": median_ms(by_count, args.repeat),
        "Python sets": median_ms(by_python_sets, args.repeat),
        "SQL windows (used)": median_ms(by_sql, args.repeat),
    }
    for name, ms in results.items():
        print(f"  {name:<20} {ms:8.1f} ms")
    ratio = results["Python sets"] / results["SQL windows (used)"]
    print(f"SQL windows vs Python sets: {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
