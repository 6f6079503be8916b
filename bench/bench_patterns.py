"""Chart patterns (`marketdata.patterns`): false positives on random walks,
and the cost of scanning many instruments.

1. False positives: `--walks` seeded random walks of `--walk-bars` bars
   (log-normal, 1 % per bar, wicks ~0.4 %). A random walk holds no pattern
   that predicts anything, so every detection is a false positive; per kind
   the table gives detections per 1,000 bars and the mean number of bars
   between two of them.
2. Full scan: `detect()` over `--instruments` instruments × `--hours` hourly
   bars (8,760 = one year of a 24/7 market; a US equity's regular sessions
   are ~1,764), synthetic bars in memory (no database), one process.
3. Live: what the alert engine does when a bar closes: `detect()` on the
   last LOOKBACK_BARS bars of each instrument, keeping detections confirmed
   on the last bar.

Wall time and CPU time (process time, less sensitive to other load on the
machine) are both printed.

    python -m bench.bench_patterns [--walks 100] [--walk-bars 5000]
        [--instruments 500] [--hours 8760] [--seed 2026]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np

from marketdata.patterns import LOOKBACK_BARS, PATTERN_KINDS, detect

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def walk(count: int, seed: int) -> list[dict]:
    """A seeded random walk as the bars `detect` takes (dicts, oldest first)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.004, count)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.004, count)))
    return [
        {
            "ts": T0 + i * HOUR,
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": 1.0,
        }
        for i, (o, h, lo, c) in enumerate(
            zip(
                open_.tolist(), high.tolist(), low.tolist(), close.tolist(), strict=True
            )
        )
    ]


def false_positives(walks: int, bars: int, seed: int) -> None:
    counts: Counter[str] = Counter()
    wall = cpu = 0.0
    for w in range(walks):
        series = walk(bars, seed + w)
        started, started_cpu = time.perf_counter(), time.process_time()
        found = detect(series)
        wall += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        counts.update(d.kind for d in found)
    total = walks * bars
    print(f"1. False positives: {walks} random walks x {bars:,} bars = {total:,} bars")
    print(
        f"   (seeds {seed}..{seed + walks - 1}; detect: {wall:.1f} s wall, {cpu:.1f} s CPU)"
    )
    print(
        f"   {'kind':<28}{'detections':>11}{'per 1,000 bars':>16}{'bars between':>14}"
    )
    for kind in PATTERN_KINDS:
        print(
            f"   {kind:<28}{counts[kind]:>11,}{counts[kind] / total * 1000:>16.3f}"
            f"{total / counts[kind] if counts[kind] else float('inf'):>14,.0f}"
        )
    print(
        f"   {'all kinds':<28}{sum(counts.values()):>11,}"
        f"{sum(counts.values()) / total * 1000:>16.3f}"
        f"{total / max(1, sum(counts.values())):>14,.0f}"
    )


def scan(instruments: int, hours: int, seed: int) -> None:
    per_wall, per_cpu, found = [], [], 0
    live_wall, live_cpu, live_found = [], [], 0
    for n in range(instruments):
        bars = walk(hours, 10_000 + seed + n)
        started, started_cpu = time.perf_counter(), time.process_time()
        found += len(detect(bars))
        per_wall.append(time.perf_counter() - started)
        per_cpu.append(time.process_time() - started_cpu)
        window = bars[-LOOKBACK_BARS:]
        started, started_cpu = time.perf_counter(), time.process_time()
        live_found += sum(d.confirmed_index == len(window) - 1 for d in detect(window))
        live_wall.append(time.perf_counter() - started)
        live_cpu.append(time.process_time() - started_cpu)
    total_bars = instruments * hours
    print(
        f"\n2. Full scan: {instruments} instruments x {hours:,} hourly bars "
        f"= {total_bars:,} bars, one process"
    )
    print(
        f"   {sum(per_wall):.1f} s wall ({sum(per_cpu):.1f} s CPU); per instrument "
        f"median {statistics.median(per_wall) * 1e3:.0f} ms, "
        f"p95 {sorted(per_wall)[int(0.95 * (len(per_wall) - 1))] * 1e3:.0f} ms, "
        f"CPU median {statistics.median(per_cpu) * 1e3:.0f} ms; "
        f"{total_bars / sum(per_cpu) / 1e3:,.0f} k bars per CPU second; "
        f"{found:,} detections"
    )
    print(
        f"\n3. Live, one closed bar on each of {instruments} instruments "
        f"({LOOKBACK_BARS} bars each):"
    )
    print(
        f"   {sum(live_wall) * 1e3:.0f} ms wall ({sum(live_cpu) * 1e3:.0f} ms CPU) "
        f"for all; per instrument median {statistics.median(live_wall) * 1e3:.1f} ms; "
        f"{live_found} detections confirmed on the last bar"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--walks", type=int, default=100)
    parser.add_argument("--walk-bars", type=int, default=5000)
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--hours", type=int, default=8760)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs; numpy {np.__version__}")
    false_positives(args.walks, args.walk_bars, args.seed)
    scan(args.instruments, args.hours, args.seed)


if __name__ == "__main__":
    main()
