"""Stream ingest: how many events/s `start_streams` handles end to end, the
tick-to-consumer latency, and the official alpaca-py client on the same feed.

    python -m bench.bench_ingest [--quick]

Processes (each its own interpreter, so each gets at most one core's worth of
Python): the exchange simulator (Alpaca protocol, 50 instruments, offered
rate stepped up), the stream worker (`manage.py start_streams`: receive,
normalize, snapshot, aggregate + store bars, publish coalesced updates), a
consumer process listening on the 50 instruments' channel-layer groups, and
the peer, alpaca-py's `StockDataStream` with a no-op handler, run against the
same simulator one after the other (never at the same time), `--rounds`
times each (2 by default), alternated; the medians are reported and each
round's ratio beside them (single 5 s windows swung ±30 % between runs).

Offered rates 1,000, 10,000 and 20,000 events/s; the one-core capacity ratio
(target >= 2x alpaca-py) is judged at 10,000 and 20,000, and when short the
bench says by how much (bench/PROFILE-ingest.md says where the CPU goes).

Figures:
* delivered events/s at each offered rate; the highest rate a receiver keeps
  up with (>= 95 % delivered, no slow-client disconnect) is its sustained rate;
* events per CPU-second of each receiving process (all its threads): what one
  core handles, independent of how fast the simulator can generate the feed;
* tick-to-consumer latency at 1,000 and 10,000 events/s: consumer receive time
  minus the event time of the newest tick in the update (`ts`; includes the
  simulator's 20 ms send batching), and minus the worker's receive time of it
  (`received_at`: the worker's own share). Updates are coalesced to
  STREAM_PUBLISH_HZ per instrument, so at 20 events/s per instrument part of
  the latency is the deliberate hold; the same figure at 50 Hz (1,000 events/s)
  shows the path without it.

Over 400 lines: the simulator, the stream worker and the alpaca-py peer are
started, fed and measured in one run so the figures compare.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench._cpu import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
N_SYMBOLS = 50
WARMUP = 2.0
WINDOW = 5.0
KEEP_UP = 0.95

os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tapeline_bench_ingest"
)
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ.setdefault("DEBUG", "1")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- child processes -------------------------------------------------------------------
def serve_simulator(port: int, rate: float) -> None:
    """The exchange simulator at `rate` messages/s per symbol (runs forever)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    import django

    django.setup()
    from simulator.server import Simulator

    Simulator(port=port, rate=rate, hours="always", tick_interval=0.02).run_forever(
        on_ready=lambda sim: print("ready", flush=True)
    )


def consume(symbols: list[str], duration: float, ready, results) -> None:
    """Listen on the instruments' groups like the web process does."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    import asyncio
    from datetime import datetime

    import django

    django.setup()
    from channels.layers import get_channel_layer

    from core.groups import symbol_group

    async def run():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        for symbol in symbols:
            await layer.group_add(symbol_group(symbol), channel)
        ready.set()
        tick, pipeline, seq_gaps, last_seq = [], [], 0, {}
        end = time.monotonic() + duration
        while (remaining := end - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(channel), remaining)
            except TimeoutError:
                break
            now = time.time()
            snap = message["snapshot"]
            if snap.get("ts"):
                tick.append(now - datetime.fromisoformat(snap["ts"]).timestamp())
            if snap.get("received_at"):
                pipeline.append(now - snap["received_at"])
            previous = last_seq.get(snap["symbol"])
            if previous is not None and snap["seq"] != previous + 1:
                seq_gaps += 1
            last_seq[snap["symbol"]] = snap["seq"]
        results.put({"tick": tick, "pipeline": pipeline, "seq_gaps": seq_gaps})

    asyncio.run(run())


def alpaca_py_peer(
    port: int, symbols: list[str], warmup: float, window: float, results, raw: bool
) -> None:
    """alpaca-py's StockDataStream, no-op handler, counting messages. Also
    also its CPU time over the same window."""
    from alpaca.data.live import StockDataStream

    count = [0]

    async def handler(_message) -> None:
        count[0] += 1

    stream = StockDataStream(
        "SIMULATOR-KEY",
        "simulator-secret",
        raw_data=raw,
        url_override=f"ws://127.0.0.1:{port}/v2/iex",
    )
    stream.subscribe_trades(handler, *symbols)
    stream.subscribe_quotes(handler, *symbols)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    time.sleep(warmup)
    start, c0, cpu0 = time.monotonic(), count[0], cpu_seconds(os.getpid())
    time.sleep(window)
    events = count[0] - c0
    rate = events / (time.monotonic() - start)
    per_cpu = events / max(1e-6, cpu_seconds(os.getpid()) - cpu0)
    results.put({"events_per_s": rate, "events_per_cpu_s": per_cpu})
    results.close()
    results.join_thread()
    os._exit(0)  # the stream's loop has no clean stop from another thread


# --- orchestration ------------------------------------------------------------------------
class Simulator:
    def __init__(self, rate_per_symbol: float) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_ingest", "--serve-simulator",
             str(self.port), str(rate_per_symbol)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        line = self.process.stdout.readline()
        if "ready" not in line:
            raise RuntimeError("the simulator did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def worker_env(port: int, publish_hz: int) -> dict:
    env = os.environ.copy()
    env.update(
        TAPELINE_PROVIDER="simulator",
        SIMULATOR_PORT=str(port),
        STREAM_PUBLISH_HZ=str(publish_hz),
        LOG_LEVEL="WARNING",
    )
    return env


def next_health() -> dict:
    """The next health report the worker stores (polled every 50 ms)."""
    after = (health() or {}).get("reported_at", 0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        doc = health()
        if doc and doc["reported_at"] > after:
            return doc
        time.sleep(0.05)
    raise RuntimeError("the stream worker stopped reporting")


def health() -> dict | None:
    from streaming.selectors import feed_status_get

    workers = [w for w in feed_status_get()["workers"] if w["alive"]]
    return workers[0] if workers else None


def run_ours(sim: Simulator, symbols, *, latency: bool, publish_hz: int = 10) -> dict:
    from core.redis import redis_client
    from streaming.selectors import health_key

    redis_client().delete(health_key())
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "start_streams", "--provider", "simulator"],
        cwd=ROOT, env=worker_env(sim.port, publish_hz),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            doc = health()
            if doc and doc["connections"] and doc["events_total"] > 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the stream worker did not start streaming")
        time.sleep(WARMUP)
        consumer = None
        if latency:
            ctx = multiprocessing.get_context("spawn")
            ready, results = ctx.Event(), ctx.Queue()
            consumer = ctx.Process(
                target=consume, args=(symbols, WINDOW, ready, results)
            )
            consumer.start()
            ready.wait(30)
        # The window runs from one health report to another, and the CPU
        # time is read as each arrives: the next report after the sleep, not
        # the latest one stored (up to a report interval old, which counted
        # that interval's CPU but not its events).
        first = next_health()
        cpu0 = cpu_seconds(worker.pid)
        time.sleep(WINDOW)
        last = next_health()
        cpu1 = cpu_seconds(worker.pid)
        events = last["events_total"] - first["events_total"]
        out = {
            "events_per_s": events
            / max(1e-6, last["reported_at"] - first["reported_at"]),
            "events_per_cpu_s": events / max(1e-6, cpu1 - cpu0),
            "reconnects": sum(c["reconnects"] for c in last["connections"]),
            "lag_p99_ms": max((c["lag_ms"]["p99"] or 0) for c in last["connections"]),
            "inbox": last["inbox_depth"],
            "published_per_s": last["published_per_s"],
        }
        if consumer is not None:
            out["latency"] = results.get(timeout=30)
            consumer.join(10)
        return out
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()


def run_peer(sim: Simulator, symbols, *, raw: bool = False) -> dict:
    """alpaca-py as a user runs it (`raw_data=False`: messages become its
    Trade/Quote models before the handler), or with `raw_data=True`."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    process = ctx.Process(
        target=alpaca_py_peer, args=(sim.port, symbols, WARMUP, WINDOW, results, raw)
    )
    process.start()
    try:
        return results.get(timeout=WARMUP + WINDOW + 30)
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()


def combined(runs: list[dict]) -> dict:
    """One receiver's rounds at one rate: the median rates, the worst lag and
    reconnects, and each round's events per CPU-second (`rounds`)."""
    out = dict(runs[0])
    for key in ("events_per_s", "events_per_cpu_s"):
        out[key] = statistics.median(r[key] for r in runs)
    out["rounds"] = [r["events_per_cpu_s"] for r in runs]
    for key in ("reconnects", "lag_p99_ms"):
        if key in out:
            out[key] = max(r[key] for r in runs)
    return out


def percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    values = sorted(values)
    return (
        values[len(values) // 2] * 1000,
        values[min(len(values) - 1, int(len(values) * 0.99))] * 1000,
    )


def prepare() -> list[str]:
    from bench._django import setup

    setup()
    from django.contrib.auth import get_user_model

    from marketdata.models import Instrument, Position, WatchlistItem
    from marketdata.services import instruments_upsert, watchlist_create
    from marketdata.universe import universe_rows

    instruments_upsert(rows=universe_rows())
    symbols = list(
        Instrument.objects.filter(asset_class__in=["equity", "etf"])
        .order_by("symbol")
        .values_list("symbol", flat=True)[:N_SYMBOLS]
    )
    # This bench's own database: exactly these 50 instruments are streamed.
    WatchlistItem.objects.all().delete()
    Position.objects.all().delete()
    Instrument.objects.update(stream_error="")
    user, _ = get_user_model().objects.get_or_create(username="bench-ingest")
    user.watchlists.all().delete()
    watchlist_create(owner=user, name="Bench", symbols=symbols)
    return symbols


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-simulator", nargs=2, metavar=("PORT", "RATE"))
    parser.add_argument(
        "--quick", action="store_true", help="skip the 50 Hz latency run"
    )
    parser.add_argument(
        "--rounds", type=int, default=2,
        help="runs of each receiver per rate, alternated; medians are reported",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.serve_simulator:
        serve_simulator(int(args.serve_simulator[0]), float(args.serve_simulator[1]))
        return 0

    symbols = prepare()
    # The capacity target is judged at 10,000 and 20,000 events/s: both runs.
    steps = [1_000, 10_000, 20_000]
    print(
        f"{N_SYMBOLS} instruments, Alpaca protocol (msgpack for both receivers), "
        f"{WINDOW:.0f} s windows, {args.rounds} rounds alternated per rate; "
        f"load average now {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    print("1) delivered events/s at each offered rate, and events per CPU-second")
    print(f"{'offered/s':>10} {'ours/s':>9} {'alpaca-py/s':>12} {'ours/cpu-s':>11}"
          f" {'alpaca-py/cpu-s':>16} {'ours lag p99':>13} {'reconn':>6}")  # fmt: skip
    latency, rows, peer_raw = {}, [], None
    for offered in steps:
        sim = Simulator(offered / N_SYMBOLS)
        try:
            # Rounds alternate the two receivers on the same feed, so a
            # machine that drifts (other work, CPU clocks) weighs on both.
            ours_runs, peer_runs = [], []
            for round_ in range(args.rounds):
                wanted = round_ == 0 and offered in (1_000, 10_000)
                ours_runs.append(run_ours(sim, symbols, latency=wanted))
                if "latency" in ours_runs[-1]:
                    latency[(offered, 10)] = ours_runs[-1]["latency"]
                peer_runs.append(run_peer(sim, symbols))
            ours, peer = combined(ours_runs), combined(peer_runs)
            if offered == 1_000 and not args.quick:
                latency[(offered, 50)] = run_ours(
                    sim, symbols, latency=True, publish_hz=50
                )["latency"]
            if offered == steps[-1]:
                peer_raw = run_peer(sim, symbols, raw=True)
        finally:
            sim.stop()
        rows.append((offered, ours, peer))
        print(
            f"{offered:>10,} {ours['events_per_s']:>9,.0f} {peer['events_per_s']:>12,.0f}"
            f" {ours['events_per_cpu_s']:>11,.0f} {peer['events_per_cpu_s']:>16,.0f}"
            f" {ours['lag_p99_ms']:>10.0f} ms {ours['reconnects']:>6}",
            flush=True,
        )

    def kept_up(result, offered, ours, peer):
        # The simulator does not always produce its nominal rate on a busy
        # machine: what the better receiver got is what the feed delivered.
        fed = min(offered, max(ours["events_per_s"], peer["events_per_s"]))
        return result["events_per_s"] >= KEEP_UP * fed and not result.get("reconnects")

    ours_max = max(
        [o["events_per_s"] for f, o, p in rows if kept_up(o, f, o, p)] or [0]
    )
    peer_max = max(
        [p["events_per_s"] for f, o, p in rows if kept_up(p, f, o, p)] or [0]
    )
    print(f"sustained (>= {KEEP_UP:.0%} of what the feed delivered, no disconnect): "
          f"ours {ours_max:,.0f}/s, alpaca-py {peer_max:,.0f}/s")  # fmt: skip
    top_offered, top_ours, top_peer = rows[-1]
    if max(top_ours["events_per_s"], top_peer["events_per_s"]) < KEEP_UP * top_offered:
        print(
            f"   at {top_offered:,}/s neither receiver got {KEEP_UP:.0%}: the simulator "
            "(one Python process generating the feed) is the limit here, so the "
            "receive-rate ratio says little; see the CPU-bound figure below"
        )

    # One core's capacity: events handled per CPU-second of the receiving
    # process (all its threads), judged at 10,000 and 20,000 events/s.
    print()
    print("2) one-core capacity (events per CPU-second; ours end to end: receive, "
          "normalize, snapshots, bars, publish; alpaca-py: no-op handler, messages "
          "parsed into its Trade/Quote models)")  # fmt: skip
    ratios = {}
    for offered, ours, peer in rows:
        if offered < 10_000:
            continue
        ratio = ours["events_per_cpu_s"] / peer["events_per_cpu_s"]
        ratios[offered] = ratio
        verdict = (
            "met"
            if ratio >= 2
            else f"NOT met: {2 / ratio:.2f}x short, "
            f"{(2 * peer['events_per_cpu_s'] - ours['events_per_cpu_s']):,.0f} "
            "events/cpu-s missing"
        )
        print(f"   at {offered:>6,}/s: ours {ours['events_per_cpu_s']:>9,.0f}, "
              f"alpaca-py {peer['events_per_cpu_s']:>9,.0f}: {ratio:5.2f}x "
              f"(target >= 2x: {verdict})")  # fmt: skip
        if len(ours["rounds"]) > 1:
            each = ", ".join(
                f"{o / p:.2f}x ({o:,.0f} / {p:,.0f})"
                for o, p in zip(ours["rounds"], peer["rounds"], strict=True)
            )
            print(f"      each round: {each}")
    if any(r < 2 for r in ratios.values()):
        print("   why short: a quote costs well under 1 us to decode and compare "
              "warm (wire values; the quote in force converted when a document "
              "shows it), plus websocket framing; the rest is per frame and per "
              "second, at any rate: ~500 coalesced updates/s published in 10-35 "
              "batches (~25 us an update), one loop wake-up a frame (read, parse "
              "and apply on one thread), the periodic steps, and the database "
              "thread's minute close (the first after a start also reports the "
              "restart gaps: a 5 s window that holds it counts ~270 ms more); "
              "every wake-up runs 2-5x slower than "
              "warm. alpaca-py's no-op client has none. Where it goes: "
              "bench/PROFILE-ingest.md")  # fmt: skip
    for offered, ours, peer in rows:
        fed = min(ours["events_per_s"], peer["events_per_s"])
        if fed < KEEP_UP * offered:
            print(f"   at {offered:,}/s the feed delivered {ours['events_per_s']:,.0f}"
                  f" (ours) and {peer['events_per_s']:,.0f} (alpaca-py) events/s: "
                  "fixed costs weigh more at a lower delivered rate, so the ratio "
                  "there is below what the offered rate would give")  # fmt: skip
    offered, ours, peer = rows[-1]
    raw_ratio = ours["events_per_cpu_s"] / peer_raw["events_per_cpu_s"]
    print(f"   alpaca-py raw_data at {offered:,}/s: {peer_raw['events_per_cpu_s']:,.0f}"
          f" (msgpack dicts, nothing normalized; ours / it: {raw_ratio:.2f}x)")  # fmt: skip
    verdict = "met" if ours["events_per_cpu_s"] >= 20_000 else "NOT met"
    print(f"   target >= 20,000 events/s on one core: {verdict}")
    ratio = ratios[offered]

    print()
    print("3) tick-to-consumer latency (consumer process, via the Redis channel layer)")
    print(f"{'events/s':>9} {'hz':>4} {'updates':>8} {'ts p50':>8} {'ts p99':>8}"
          f" {'recv p50':>9} {'recv p99':>9} {'seq gaps':>8}")  # fmt: skip
    for (rate, hz), result in sorted(latency.items()):
        t50, t99 = percentiles(result["tick"])
        r50, r99 = percentiles(result["pipeline"])
        print(
            f"{rate:>9,} {hz:>4} {len(result['tick']):>8} {t50:>6.1f}ms {t99:>6.1f}ms"
            f" {r50:>7.1f}ms {r99:>7.1f}ms {result['seq_gaps']:>8}"
        )
    print("   ts = newest tick's event time (includes the simulator's 20 ms send "
          "batching); recv = the worker's receive time of it")  # fmt: skip
    print(json.dumps({
        "ours_sustained": round(ours_max), "alpaca_py_sustained": round(peer_max),
        "ours_per_cpu_s": round(ours["events_per_cpu_s"]),
        "alpaca_py_per_cpu_s": round(peer["events_per_cpu_s"]),
        "ratio": round(ratio, 2),
        "ratios": {str(k): round(v, 2) for k, v in ratios.items()},
        "alpaca_py_raw_per_cpu_s": round(peer_raw["events_per_cpu_s"]),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
