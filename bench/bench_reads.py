"""Chart reads: one year of 1-minute bars resampled to 1h, and the last day of
1-minute bars, p50/p99; against resampling the minutes on the fly (no stored
rollups), measured in the same run.

    python -m bench.bench_reads

Targets: 1h over a year <= 50 ms, last day of 1m <= 5 ms.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from bench._django import setup

YEAR_START = datetime(2032, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2033, 1, 1, tzinfo=UTC)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def measure(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def main() -> None:
    setup()
    from django.db import connection, transaction

    from bench.bench_storage import make_rows, pages
    from marketdata.calendar import expected_minutes
    from marketdata.models import Bar, BarRollup, Instrument
    from marketdata.rollups import resample_sql, rollups_refresh
    from marketdata.selectors import bars_resampled
    from marketdata.services import bars_upsert

    cases = []
    for symbol, asset_class in (("MSFT", "equity"), ("ETH/USD", "crypto")):
        instrument, _ = Instrument.objects.get_or_create(
            symbol=symbol, defaults={"name": symbol, "asset_class": asset_class}
        )
        Bar.objects.filter(instrument=instrument, ts__gte=YEAR_START).delete()
        BarRollup.objects.filter(instrument=instrument, ts__gte=YEAR_START).delete()
        minutes = list(expected_minutes(asset_class, YEAR_START, YEAR_END))
        rows = make_rows(instrument.id, len(minutes))
        rows = [r[:2] + (ts,) + r[3:] for r, ts in zip(rows, minutes, strict=True)]
        for page in pages(rows):
            bars_upsert(rows=page, provider="bench")
        rollups_refresh(
            instrument_id=instrument.id,
            asset_class=asset_class,
            start=YEAR_START,
            end=YEAR_END,
        )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE marketdata_bar_y2032")
            cursor.execute("ANALYZE marketdata_bar_rollup")
        cases.append((instrument, asset_class, len(rows)))

    print(f"{'query':<52} {'rows in':>8} {'rows out':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for instrument, asset_class, n in cases:
        label = f"{instrument.symbol} {asset_class}"
        hourly = bars_resampled(
            instrument=instrument,
            timeframe="1h",
            start=YEAR_START,
            end=YEAR_END,
            limit=5000,
            as_float=True,
        )

        def read_hourly(instrument=instrument):
            bars_resampled(
                instrument=instrument, timeframe="1h", start=YEAR_START, end=YEAR_END,
                limit=5000, as_float=True,
            )  # fmt: skip

        sql, params = resample_sql(
            timeframe="1h", asset_class=asset_class, start=YEAR_START, end=YEAR_END
        )
        params = [instrument.id if p == "__instrument__" else p for p in params]

        def read_hourly_on_the_fly(sql=sql, params=params):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
                cursor.execute(sql + " ORDER BY 1", params)
                return cursor.fetchall()

        on_the_fly = len(read_hourly_on_the_fly())

        last_day_end = YEAR_END
        last_day_start = YEAR_END - timedelta(days=1)
        if asset_class == "equity":
            last_day_start = datetime(2032, 12, 31, 14, 30, tzinfo=UTC)

        def read_last_day(instrument=instrument, lo=last_day_start, hi=last_day_end):
            bars_resampled(
                instrument=instrument,
                timeframe="1m",
                start=lo,
                end=hi,
                limit=5000,
                as_float=True,
            )

        last_day = bars_resampled(
            instrument=instrument,
            timeframe="1m",
            start=last_day_start,
            end=last_day_end,
            limit=5000,
        )
        p50, p99 = measure(read_hourly, 40)
        f50, f99 = measure(read_hourly_on_the_fly, 10)
        d50, d99 = measure(read_last_day, 200)
        print(
            f"{label + ': year of 1m -> 1h (rollups)':<52} {n:>8,} {len(hourly):>8,} {p50:>8.2f} {p99:>8.2f}"
        )
        print(
            f"{label + ': year of 1m -> 1h (date_bin on the fly)':<52} {n:>8,} {on_the_fly:>8,} {f50:>8.2f} {f99:>8.2f}"
        )
        print(
            f"{label + ': last day of 1m':<52} {len(last_day):>8,} {len(last_day):>8,} {d50:>8.2f} {d99:>8.2f}"
        )
        print(
            f"   -> rollups are {f50 / p50:.1f}x faster than resampling on the fly (p50)"
        )
    for instrument, _, _ in cases:
        Bar.objects.filter(instrument=instrument, ts__gte=YEAR_START).delete()
        BarRollup.objects.filter(instrument=instrument, ts__gte=YEAR_START).delete()
    print("targets: 1h over a year <= 50 ms p50; last day of 1m <= 5 ms p50")
    print("(rollup reads return at most 5,000 bars, the chart API's cap)")


if __name__ == "__main__":
    main()
