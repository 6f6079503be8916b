"""Candlestick patterns over 500,000 bars: marketdata.candles vs TA-Lib.

For each of the twelve patterns, times our function (`candles.pattern`) and
TA-Lib's CDL* function on the same bars (best of `--repeat`, interleaved so
both see the same machine load), checks the outputs are equal element by
element, and prints bars per second and the ratio; then `candles.detect`
(all twelve at once, sharing the per-bar measures and the averages) against
the twelve TA-Lib calls in a row.

    python -m bench.bench_candles [--bars 500000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import talib

from marketdata import candles as cd


def bars(count: int, seed: int = 42) -> tuple[np.ndarray, ...]:
    """A random walk on a cent grid: ties, dojis and gaps occur."""
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.004, count))), 2)
    open_ = np.round(np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.001, count)), 2)
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = np.round(top * (1 + np.abs(rng.normal(0, 0.002, count))), 2)
    low = np.round(bottom * (1 - np.abs(rng.normal(0, 0.002, count))), 2)
    return open_, high, low, close


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    o, h, lo, c = bars(args.bars)
    n = args.bars
    print(f"{n:,} bars, best of {args.repeat}, numpy {np.__version__}")
    print(
        f"{'pattern':<22}{'ours Mbar/s':>12}{'TA-Lib Mbar/s':>14}"
        f"{'ratio':>8}{'fires':>9}  equal"
    )
    total_talib = 0.0
    all_equal = True
    for name, function in cd.TALIB_FUNCTIONS.items():
        ours = lambda name=name: cd.pattern(name, o, h, lo, c)  # noqa: E731
        theirs = getattr(talib, function)
        ours_times, talib_times = [], []
        for _ in range(args.repeat):
            ours_times.append(timed(ours))
            talib_times.append(timed(lambda theirs=theirs: theirs(o, h, lo, c)))
        t_ours, t_talib = min(ours_times), min(talib_times)
        total_talib += t_talib
        expected = theirs(o, h, lo, c)
        equal = bool(np.array_equal(ours(), expected))
        all_equal &= equal
        print(
            f"{name:<22}{n / t_ours / 1e6:>12.2f}{n / t_talib / 1e6:>14.2f}"
            f"{t_ours / t_talib:>8.2f}{np.count_nonzero(expected):>9,}  {equal}"
        )
    detect_times = [timed(lambda: cd.detect(o, h, lo, c)) for _ in range(args.repeat)]
    t_detect = min(detect_times)
    print(
        f"{'detect (all twelve)':<22}{n / t_detect / 1e6:>12.2f}"
        f"{n / total_talib / 1e6:>14.2f}{t_detect / total_talib:>8.2f}"
        f"{'':>9}  {all_equal}"
    )
    print(
        f"all twelve: {t_detect * 1e3:.1f} ms ours vs {total_talib * 1e3:.1f} ms "
        f"TA-Lib ({n / t_detect / 1e6:.2f} vs {n / total_talib / 1e6:.2f} "
        "million bars/s through every pattern)"
    )
    if not all_equal:
        raise SystemExit("outputs differ from TA-Lib")


if __name__ == "__main__":
    main()
