"""Indicators over 500,000 bars: marketdata.indicators vs TA-Lib, same run.

For each of the eight indicators, times our vectorized function and TA-Lib's
(best of `--repeat` runs, interleaved so both see the same machine load),
checks they agree (same NaN positions, max relative difference), and prints
the ratio; then the total over all eight against the issue's target (≤ 2x).
Also times the incremental classes (one bar at a time, pure Python) on
100,000 bars for reference.

    python -m bench.bench_indicators [--bars 500000] [--repeat 25]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import talib

from marketdata import indicators as ind


def series(count: int, seed: int = 42) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, count)))
    high = close * (1 + np.abs(rng.normal(0, 0.0008, count)))
    low = close * (1 - np.abs(rng.normal(0, 0.0008, count)))
    return high, low, close


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def max_rel(ours, theirs) -> float:
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return float("inf")
        valid = ~np.isnan(b)
        scale = np.maximum(np.abs(b[valid]), 1e-3 * 100)
        worst = max(worst, float(np.max(np.abs(a[valid] - b[valid]) / scale)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    high, low, close = series(args.bars)
    cases = [
        ("SMA(20)", lambda: ind.sma(close, 20), lambda: talib.SMA(close, 20)),
        ("EMA(20)", lambda: ind.ema(close, 20), lambda: talib.EMA(close, 20)),
        ("RSI(14)", lambda: ind.rsi(close, 14), lambda: talib.RSI(close, 14)),
        (
            "MACD(12,26,9)",
            lambda: ind.macd(close),
            lambda: talib.MACD(close, 12, 26, 9),
        ),
        (
            "BBANDS(20,2)",
            lambda: ind.bollinger(close, 20, 2),
            lambda: talib.BBANDS(close, 20, 2, 2, 0),
        ),
        (
            "STOCH(14,3,3)",
            lambda: ind.stochastic(high, low, close, 14, 3, 3),
            lambda: talib.STOCH(high, low, close, 14, 3, 0, 3, 0),
        ),
        (
            "WILLR(14)",
            lambda: ind.williams_r(high, low, close, 14),
            lambda: talib.WILLR(high, low, close, 14),
        ),
        (
            "ATR(14)",
            lambda: ind.atr(high, low, close, 14),
            lambda: talib.ATR(high, low, close, 14),
        ),
    ]
    print(f"{args.bars:,} bars, best of {args.repeat}, numpy {np.__version__}")
    print(
        f"{'indicator':<15}{'ours ms':>10}{'TA-Lib ms':>11}{'ratio':>8}{'max rel diff':>14}"
    )
    total_ours = total_talib = 0.0
    for name, ours, theirs in cases:
        ours_times, talib_times = [], []
        for _ in range(args.repeat):  # interleave so both see the same load
            ours_times.append(best_of(ours, 1))
            talib_times.append(best_of(theirs, 1))
        t_ours, t_talib = min(ours_times), min(talib_times)
        total_ours += t_ours
        total_talib += t_talib
        diff = max_rel(ours(), theirs())
        print(
            f"{name:<15}{t_ours * 1e3:>10.2f}{t_talib * 1e3:>11.2f}"
            f"{t_ours / t_talib:>8.2f}{diff:>14.1e}"
        )
    ratio = total_ours / total_talib
    print(
        f"{'all eight':<15}{total_ours * 1e3:>10.2f}{total_talib * 1e3:>11.2f}"
        f"{ratio:>8.2f}   target <= 2.00: {'met' if ratio <= 2 else 'NOT met'}"
    )

    count = min(100_000, args.bars)
    h, lo, c = high[:count], low[:count], close[:count]
    print(f"\nincremental classes, {count:,} bars one at a time (pure Python):")
    incremental = [
        ("SMA(20)", lambda: [s.update(x) for s in [ind.SMA(20)] for x in c]),
        ("EMA(20)", lambda: [s.update(x) for s in [ind.EMA(20)] for x in c]),
        ("RSI(14)", lambda: [s.update(x) for s in [ind.RSI(14)] for x in c]),
        ("MACD", lambda: [s.update(x) for s in [ind.MACD()] for x in c]),
        ("Bollinger", lambda: [s.update(x) for s in [ind.Bollinger()] for x in c]),
        (
            "Stochastic",
            lambda: [
                s.update(*v)
                for s in [ind.Stochastic()]
                for v in zip(h, lo, c, strict=True)
            ],
        ),
        (
            "WilliamsR",
            lambda: [
                s.update(*v)
                for s in [ind.WilliamsR()]
                for v in zip(h, lo, c, strict=True)
            ],
        ),
        (
            "ATR",
            lambda: [
                s.update(*v) for s in [ind.ATR()] for v in zip(h, lo, c, strict=True)
            ],
        ),
    ]
    for name, fn in incremental:
        seconds = best_of(fn, 1)
        print(f"  {name:<12}{seconds / count * 1e6:>8.2f} µs/bar")


if __name__ == "__main__":
    main()
