"""Garbage-collector pauses in the stream worker, with and without `gc.freeze`.

    python -m bench.bench_worker_gc [--seconds 45]

The worker (`manage.py start_streams`, in a child process that records every
collection through `gc.callbacks`) streams 50 instruments at 1,000 events/s
from the simulator, once as shipped (start-up objects frozen after start and
after 15 s) and once with `--no-freeze-gc`, the peer. A collection holds the
GIL, so its duration is how long the event loop and the receive threads stop.
Reported: full (generation 2) collections after the first 20 s (steady state):
count and longest, and every collection's longest, by thread CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from bench.bench_ingest import N_SYMBOLS, ROOT, Simulator, prepare, worker_env

STEADY_AFTER = 20.0


def run_worker(freeze: bool) -> None:
    """Child: start_streams with a collection probe; prints one JSON line at exit."""
    import gc

    started = time.monotonic()
    collections, current = [], {}

    def probe(phase: str, info: dict) -> None:
        if phase == "start":
            current["wall"], current["cpu"] = time.perf_counter(), time.thread_time()
            return
        collections.append(
            (
                round(time.monotonic() - started, 2),
                info["generation"],
                (time.thread_time() - current["cpu"]) * 1000,
            )
        )

    gc.callbacks.append(probe)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    import django

    django.setup()
    from django.core.management import call_command

    args = ["start_streams", "--provider", "simulator"]
    try:
        call_command(*args, *([] if freeze else ["--no-freeze-gc"]))
    except SystemExit:
        pass
    finally:
        print(json.dumps(collections), flush=True)


def measure(sim: Simulator, *, freeze: bool, seconds: float) -> list:
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_worker_gc", "--child", str(int(freeze))],
        cwd=ROOT, env=worker_env(sim.port, 10),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    time.sleep(seconds)
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def summary(name: str, collections: list) -> dict:
    steady = [c for c in collections if c[0] >= STEADY_AFTER and c[1] == 2]
    longest = max((c[2] for c in collections), default=0.0)
    line = {
        "name": name,
        "full_steady": len(steady),
        "full_steady_max_ms": max((c[2] for c in steady), default=0.0),
        "full_steady_total_ms": sum(c[2] for c in steady),
        "longest_any_ms": longest,
        "collections": len(collections),
    }
    print(
        f"{name:22} {line['collections']:>11} {line['full_steady']:>12}"
        f" {line['full_steady_max_ms']:>14.1f} {line['full_steady_total_ms']:>13.1f}"
        f" {longest:>15.1f}"
    )
    return line


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--child", choices=["0", "1"])
    args = parser.parse_args(argv)
    if args.child is not None:
        run_worker(freeze=args.child == "1")
        return 0
    prepare()
    print(
        f"stream worker, {N_SYMBOLS} instruments at 1,000 events/s, {args.seconds:.0f} s "
        f"each; steady state = after {STEADY_AFTER:.0f} s; thread CPU ms per collection"
    )
    print(f"{'worker':22} {'collections':>11} {'full, steady':>12}"
          f" {'longest full':>14} {'total full':>13} {'longest (any)':>15}")  # fmt: skip
    sim = Simulator(1_000 / N_SYMBOLS)
    try:
        shipped = summary(
            "shipped (gc.freeze)", measure(sim, freeze=True, seconds=args.seconds)
        )
        peer = summary(
            "peer: --no-freeze-gc", measure(sim, freeze=False, seconds=args.seconds)
        )
    finally:
        sim.stop()
    print(
        f"steady-state full-collection time: {shipped['full_steady_total_ms']:.1f} ms "
        f"shipped vs {peer['full_steady_total_ms']:.1f} ms peer over "
        f"{args.seconds - STEADY_AFTER:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
