"""The chart's CSV export: bars with all eight indicators' columns.

Times `indicator_series` plus `dashboard.exports.bars_csv` (the work of
GET /export/bars.csv after the database read) for a chart's worth of bars up
to the export limit, against pandas `DataFrame.to_csv` writing the same
columns in the same run (pandas comes with alpaca-py in the test
environment; skipped when absent). Best of `--repeat`.

    python -m bench.bench_exports [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from bench._django import setup

SPEC = "sma:20,ema:50,bb:20:2,rsi:14,macd:12:26:9,stoch:14:3:3,willr:14,atr:14"


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def measure(count: int, repeat: int, pd) -> str:
    from dashboard.exports import bars_csv
    from marketdata.indicators import indicator_series

    rng = np.random.default_rng(1)
    close = np.round(100 + np.cumsum(rng.normal(0, 0.05, count)), 2)
    high, low = close + 0.05, close - 0.05
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        (t0 + timedelta(minutes=i), *(Decimal(f"{x:.2f}") for x in (
            close[i], high[i], low[i], close[i])), Decimal(100), 5)
        for i in range(count)
    ]  # fmt: skip

    def compute():
        return indicator_series(
            spec=SPEC, opens=close, highs=high, lows=low, closes=close,
            volumes=close,
        )  # fmt: skip

    series = compute()
    text = bars_csv(rows=rows, indicators=series)
    computing = best_of(compute, repeat)
    writing = best_of(lambda: bars_csv(rows=rows, indicators=series), repeat)
    peer = "—"
    if pd is not None:
        frame = pd.DataFrame(
            {
                "open": close, "high": high, "low": low, "close": close,
                "volume": 100.0, "trades": 5,
                **{f"{k}_{line}": v for k, lines in series.items()
                   for line, v in lines.items()},
            },
            index=pd.DatetimeIndex([r[0] for r in rows], name="time_utc"),
        )  # fmt: skip
        seconds = best_of(
            lambda: frame.to_csv(float_format="%.8f", date_format="%Y-%m-%dT%H:%M:%SZ"),
            repeat,
        )  # fmt: skip
        peer = f"{seconds * 1000:.0f} ms"
    return (
        f"{count:>7,} {computing * 1000:>8.1f} ms {writing * 1000:>6.0f} ms "
        f"{len(text) / 1e6:>5.1f} {peer:>14}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    setup()
    try:
        import pandas as pd
    except ImportError:
        pd = None
    print(f"{'bars':>7} {'indicators':>11} {'csv':>9} {'MB':>5} {'pandas to_csv':>14}")
    for count in (500, 5_000, 50_000):
        print(measure(count, args.repeat, pd), flush=True)


if __name__ == "__main__":
    main()
