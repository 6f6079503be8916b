"""Scale-out: 1 vs 2 processes of each kind, measured in one run.

    python -m bench.bench_scaleout [--quick] [--parts fanout,ingest,history,layer]

- fanout: browser WebSocket clients (bench_fanout's clients and publisher, 50
  instruments x 10 updates/s, 20 per client, conflated 100 ms) on one Daphne
  process with N and 2N clients, then on two Daphne processes with N each. A
  count holds when p99 <= 250 ms and every client ends with the latest state.
  The table compares 2N clients on one process and on two: p99, and the
  projected capacity with a core per process (frames per Daphne CPU-second /
  10 frames per client per second, summed over processes).
- ingest: `start_streams` at the same offered event rate (one simulator
  process feeding every worker), as one worker and as two shards (`--shard
  0/2`, `1/2`): events/s from the workers' health reports, and the projected
  sustained rate, events/s divided by the busiest process's share of a core
  (where it would saturate with a core per process). The worker handles tens
  of thousands of events per CPU-second, more than one simulator process can
  generate, so the delivered rate here is the simulator's.
- history: `load_history` of 6 instruments x 1 year of minutes through
  `rundramatiq --processes 1` and `--processes 2` (2 threads each), without a
  rate limit and with `SIMULATOR_RATE_LIMIT` (requests/min toward the
  provider, shared through Redis) set low enough to bind.
- layer: the channel layer over one Redis server and over two (a private
  `redis-server` on another port): a publisher process sends numbered updates
  to 50 instrument groups, a receiver process counts what arrives.

The parts are in `bench/_scaleout.py`; this prints them and the summary table.
Each process of a kind wants a core of its own: on a 2-core machine running
the load generators too, the 2-process rows cannot reach 2x (see README).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tapeline_bench_scale"
)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ.setdefault("CHANNELS_PREFIX", f"benchscale{os.getpid()}")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench import _scaleout as parts

PARTS = ("fanout", "ingest", "history", "layer")


def ratio(top: float, bottom: float) -> str:
    return f"{top / bottom:.2f}x" if bottom else "n/a"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller loads")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--layer-role", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.layer_role:  # a child process of the layer part
        parts.layer_child(*args.layer_role)
        return 0
    wanted = [p for p in args.parts.split(",") if p]
    unknown = set(wanted) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    from bench._django import setup

    setup()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (shared; figures vary)")
    table: list[tuple[str, str, str, str]] = []

    if "fanout" in wanted:
        print("\nfan-out (Daphne processes x clients; conflated 100 ms)", flush=True)
        rows = parts.fanout(quick=args.quick)
        by = {(r["procs"], r["clients"]): r for r in rows}
        n = rows[0]["clients"]
        one, two = by[(1, 2 * n)], by[(2, 2 * n)]
        table += [
            (
                f"fan-out: p99 with {2 * n} clients",
                f"{one['p99']:.0f} ms{'' if one['holds'] else ' FAILS'}",
                f"{two['p99']:.0f} ms{'' if two['holds'] else ' FAILS'}",
                "",
            ),
            (
                "fan-out: projected clients, a core per process",
                f"{one['projected']:,.0f}",
                f"{two['projected']:,.0f}",
                ratio(two["projected"], one["projected"]),
            ),
        ]

    if "ingest" in wanted:
        print("\ningest (start_streams: one worker vs two shards)", flush=True)
        one, two, offered = parts.ingest(quick=args.quick)
        table.append(
            (
                f"ingest: events/s delivered of {offered:,}/s",
                f"{one['events_per_s']:,.0f}",
                f"{two['events_per_s']:,.0f}",
                ratio(two["events_per_s"], one["events_per_s"]),
            )
        )
        table.append(
            (
                "ingest: projected events/s, a core per process",
                f"{one['projected']:,.0f}",
                f"{two['projected']:,.0f}",
                ratio(two["projected"], one["projected"]),
            )
        )

    if "history" in wanted:
        print("\nhistory (load_history through rundramatiq)", flush=True)
        runs, limit = parts.history(quick=args.quick)
        for limited in (False, True):
            one, two = runs[(1, limited)], runs[(2, limited)]
            label = f"{limit} requests/min" if limited else "no rate limit"
            table.append(
                (
                    f"history: bars/s, {label}",
                    f"{one['bars_per_s']:,.0f} ({one['seconds']:.1f} s)",
                    f"{two['bars_per_s']:,.0f} ({two['seconds']:.1f} s)",
                    ratio(two["bars_per_s"], one["bars_per_s"]),
                )
            )

    if "layer" in wanted:
        print("\nchannel layer (one Redis server vs two)", flush=True)
        one, two = parts.layer(quick=args.quick)
        table.append(
            (
                "channel layer: delivered, seq gaps (Redis servers)",
                f"{one['delivered']:.1%}, {one['gaps']} gaps",
                f"{two['delivered']:.1%}, {two['gaps']} gaps",
                "",
            )
        )

    print("\nscale-out, measured in this run (1 vs 2 processes / servers)")
    print(f"{'':52} {'1':>26} {'2':>26} {'ratio':>7}")
    for name, a, b, r in table:
        print(f"{name:52} {a:>26} {b:>26} {r:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
