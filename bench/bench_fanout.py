"""Browser fan-out: N WebSocket clients on one Daphne process.

Each client logs in (session cookie), subscribes to 20 of 50 instruments, and
measures tick-to-client latency (publisher `group_send` time → client receive
time) for every document it gets. A publisher process sends `market.update`
for 50 instruments at 10 updates/s each (the stream worker's full rate,
`STREAM_PUBLISH_HZ`) through the real Redis pub/sub channel layer for
`STREAM_SECONDS`; afterwards every client must hold the final `seq` of each
of its instruments.

Two designs, measured in the same run, each on a fresh Daphne process:
- conflated (what ships): one hub per process joins each group once and sends
  each client what changed, at once while the process is within its frame
  budget and conflated past it (at most `WS_CONFLATE_MS` apart);
- naive (`WS_CONFLATE_MS=0`): every consumer joins every group it watches and
  sends one frame per tick.

A client count "holds" when p99 ≤ 250 ms and every client ends with the latest
state. Prints a table per design, the largest count that holds for each, and
their ratio.

    python -m bench.bench_fanout [--seconds 8] [--quick]

Over 400 lines: it starts Daphne and a publisher, runs the clients in one
asyncio loop and compares designs in one run; the parts share its timing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from array import array
from pathlib import Path

os.environ.setdefault("CHANNELS_PREFIX", f"benchfan{os.getpid()}")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from bench._django import setup

ROOT = Path(__file__).resolve().parent.parent
INSTRUMENTS = 50
PER_CLIENT = 20
RATE_HZ = 10
P99_TARGET_MS = 250.0
GRACE_SECONDS = 3.0
CONFLATED_COUNTS = (100, 250, 500, 1000)
TRACE = bool(os.environ.get("BENCH_TRACE"))
FIELDS = re.compile(rb'"symbol":"([^"]+)","seq":(\d+),"bench_t":([0-9.e+-]+)')
NAIVE_COUNTS = (10, 25, 50, 100, 250, 500, 1000)

DOC_TEMPLATE = {
    "ts": "2026-11-20T15:00:00.000000+00:00",
    "received_at": 0.0,
    "provider": "simulator",
    "last": "189.23",
    "last_size": "100",
    "bid": "189.22",
    "bid_size": "2",
    "ask": "189.24",
    "ask_size": "3",
    "open": "187.10",
    "high": "190.00",
    "low": "186.95",
    "volume": "1234567",
    "prev_close": "186.50",
    "change": "2.73",
    "change_pct": "1.4638",
    "freshness": "live",
    "halted": False,
    "minute": {
        "ts": "2026-11-20T15:00:00+00:00",
        "open": "189.00",
        "high": "189.30",
        "low": "188.90",
        "close": "189.23",
        "volume": "5400",
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare() -> tuple[list[str], str]:
    """Instruments and a logged-in session cookie."""
    setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from marketdata.models import Instrument
    from marketdata.services import instruments_upsert
    from marketdata.universe import universe_rows

    if Instrument.objects.filter(active=True).count() < INSTRUMENTS:
        instruments_upsert(rows=universe_rows())
    symbols = list(
        Instrument.objects.filter(active=True)
        .order_by("symbol")
        .values_list("symbol", flat=True)[:INSTRUMENTS]
    )
    user, _ = get_user_model().objects.get_or_create(username="bench-fanout")
    client = Client()
    client.force_login(user)
    return symbols, client.cookies["sessionid"].value


def publish(symbols: list[str], seconds: float, start_at: float, done) -> None:
    """Child process: one event loop sending every instrument's updates."""
    from channels.layers import get_channel_layer

    from core.groups import symbol_group

    async def run() -> None:
        layer = get_channel_layer()
        groups = [symbol_group(s) for s in symbols]
        ticks = int(seconds * RATE_HZ)
        interval = 1 / RATE_HZ
        await asyncio.sleep(max(0.0, start_at - time.time()))
        begin = time.monotonic()
        step = interval / len(symbols)
        for tick in range(1, ticks + 1):
            # Instruments tick independently: spread their updates over the interval.
            for index, (symbol, group) in enumerate(zip(symbols, groups, strict=True)):
                delay = begin + (tick - 1) * interval + index * step - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                doc = {**DOC_TEMPLATE, "last": f"{100 + tick / 100:.2f}"}
                # Kept adjacent and last: clients read them with one regex.
                doc.update(symbol=symbol, seq=tick, bench_t=time.time())
                await layer.group_send(
                    group, {"type": "market.update", "snapshot": doc}
                )
        done.set()

    asyncio.run(run())


def start_daphne(
    port: int, conflate_ms: int, timeout: float = 30.0
) -> subprocess.Popen:
    env = {
        **os.environ,
        "WS_CONFLATE_MS": str(conflate_ms),
        "WS_MAX_INSTRUMENTS": "200",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "core.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("daphne did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_clients(
    *,
    ports: list[int],
    cookie: str,
    symbols: list[str],
    count: int,
    seconds: float,
    daphne_pids: list[int],
) -> dict:
    """`count` clients spread round-robin over the Daphne processes on
    `ports` (bench_scaleout runs two); CPU is reported per process."""
    import orjson
    from websockets.asyncio.client import connect

    ticks = int(seconds * RATE_HZ)
    latencies = array("d")
    trace = array("d")
    finals: list[dict[str, int]] = []
    frames = [0]
    measure_from = [float("inf")]
    sockets = []
    ready = asyncio.Event()
    subscribed = [0]

    async def client(index: int) -> None:
        mine = [symbols[(index * 7 + k) % len(symbols)] for k in range(PER_CLIENT)]
        seqs: dict[str, int] = {}
        finals.append(seqs)
        port = ports[index % len(ports)]
        ws = await connect(
            f"ws://127.0.0.1:{port}/ws/market/",
            additional_headers={
                "Cookie": f"sessionid={cookie}",
                "Origin": f"http://127.0.0.1:{port}",
            },
            max_size=None,
            compression=None,
            open_timeout=60,
            ping_interval=None,
        )
        sockets.append(ws)
        await ws.send(orjson.dumps({"action": "subscribe", "symbols": mine}).decode())
        try:
            while True:
                # Bytes and a regex instead of full JSON parsing: the client
                # process must not be the bottleneck of a server measurement.
                message = await ws.recv(decode=False)
                if message.startswith(b'{"type":"snapshot"'):
                    subscribed[0] += 1
                    if subscribed[0] == count:
                        ready.set()
                    continue
                if not message.startswith(b'{"type":"updates"'):
                    continue
                frames[0] += 1
                now = time.time()
                measuring = now >= measure_from[0]
                for symbol, seq, sent in FIELDS.findall(message):
                    seq = int(seq)
                    if seq > seqs.get(symbol, 0):
                        seqs[symbol] = seq
                    if measuring:
                        latencies.append(now - float(sent))
                        if TRACE:
                            trace.append(now)
        except Exception:
            pass

    tasks = []
    for start in range(0, count, 50):
        batch = [
            asyncio.create_task(client(i)) for i in range(start, min(count, start + 50))
        ]
        tasks.extend(batch)
        while len(sockets) < min(count, start + 50):
            await asyncio.sleep(0.01)
    await asyncio.wait_for(ready.wait(), timeout=120)

    ctx = multiprocessing.get_context("fork")
    done = ctx.Event()
    start_at = time.time() + 0.5
    publisher = ctx.Process(target=publish, args=(symbols, seconds, start_at, done))
    measure_from[0] = start_at + 1.0  # skip the first second (warm-up)
    cpu_before = [cpu_seconds(pid) for pid in daphne_pids]
    own_before = cpu_seconds(os.getpid())
    publisher.start()
    while not done.is_set():
        await asyncio.sleep(0.05)
    stream_wall = time.time() - start_at
    cpu_used = [
        cpu_seconds(pid) - before
        for pid, before in zip(daphne_pids, cpu_before, strict=True)
    ]
    own_used = cpu_seconds(os.getpid()) - own_before
    publisher.join()

    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline:
        if all(
            all(v == ticks for v in seqs.values()) and len(seqs) == PER_CLIENT
            for seqs in finals
        ):
            break
        await asyncio.sleep(0.05)
    complete = sum(
        1
        for seqs in finals
        if len(seqs) == PER_CLIENT and all(v == ticks for v in seqs.values())
    )
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)

    if TRACE:
        by_second: dict[int, list[float]] = {}
        for at, latency in zip(trace, latencies, strict=True):
            by_second.setdefault(int(at - measure_from[0]), []).append(latency)
        for second, values in sorted(by_second.items()):
            values.sort()
            print(
                f"    t+{second}s p50 {values[len(values) // 2] * 1000:.0f} ms "
                f"p99 {values[int(len(values) * 0.99)] * 1000:.0f} ms n={len(values)}"
            )
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return (
            ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000
            if ordered
            else float("nan")
        )

    return {
        "clients": count,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "frames_per_s": frames[0] / max(stream_wall, 1e-9),
        "complete": complete,
        "cpu": [used / max(stream_wall, 1e-9) * 100 for used in cpu_used],
        "client_cpu": own_used / max(stream_wall, 1e-9) * 100,
    }


def measure(design: str, counts, *, symbols, cookie, seconds) -> list[dict]:
    conflate_ms = 100 if design == "conflated" else 0
    results = []
    for count in counts:
        port = free_port()
        daphne = start_daphne(port, conflate_ms)
        try:
            result = asyncio.run(
                run_clients(
                    ports=[port],
                    cookie=cookie,
                    symbols=symbols,
                    count=count,
                    seconds=seconds,
                    daphne_pids=[daphne.pid],
                )
            )
        finally:
            daphne.terminate()
            try:
                daphne.wait(10)
            except subprocess.TimeoutExpired:
                daphne.kill()
        result["holds"] = result["p99"] <= P99_TARGET_MS and result["complete"] == count
        results.append(result)
        print(
            f"  {design:9} {count:5d} clients  p50 {result['p50']:8.1f} ms  "
            f"p99 {result['p99']:8.1f} ms  {result['frames_per_s']:8.0f} frames/s  "
            f"final state {result['complete']:4d}/{count:<4d}  daphne cpu {result['cpu'][0]:4.0f}%  clients cpu {result['client_cpu']:4.0f}%  "
            f"{'holds' if result['holds'] else 'FAILS'}",
            flush=True,
        )
        if not result["holds"] and design == "naive":
            break  # larger counts only get worse
    return results


def largest(results: list[dict]) -> int:
    held = [r["clients"] for r in results if r["holds"]]
    return max(held) if held else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="streaming time per run"
    )
    parser.add_argument("--quick", action="store_true", help="fewer client counts")
    parser.add_argument(
        "--design", choices=("both", "conflated", "naive"), default="both"
    )
    parser.add_argument(
        "--counts", type=lambda v: [int(x) for x in v.split(",")], help="e.g. 500,1000"
    )
    args = parser.parse_args()
    symbols, cookie = prepare()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (shared; figures vary)")
    print(
        f"{INSTRUMENTS} instruments x {RATE_HZ} updates/s = {INSTRUMENTS * RATE_HZ} group "
        f"messages/s for {args.seconds:.0f} s; {PER_CLIENT} instruments per client; "
        f"one Daphne process; holds = p99 <= {P99_TARGET_MS:.0f} ms and every final state delivered"
    )
    conflated_counts = CONFLATED_COUNTS[:2] if args.quick else CONFLATED_COUNTS
    naive_counts = NAIVE_COUNTS[:3] if args.quick else NAIVE_COUNTS
    if args.counts:
        conflated_counts = naive_counts = args.counts
    if args.design == "naive":
        conflated_counts = ()
    if args.design == "conflated":
        naive_counts = ()
    conflated = measure(
        "conflated",
        conflated_counts,
        symbols=symbols,
        cookie=cookie,
        seconds=args.seconds,
    )
    naive = measure(
        "naive", naive_counts, symbols=symbols, cookie=cookie, seconds=args.seconds
    )
    best, peer = largest(conflated), largest(naive)
    print()
    print(
        f"largest client count that holds, conflated (100 ms): {best}   (target >= 500)"
    )
    print(f"largest client count that holds, naive (frame per tick): {peer}")
    ratio = best / peer if peer else float("inf")
    print(f"ratio conflated / naive: {ratio:.1f}x   (target >= 10x)")


if __name__ == "__main__":
    main()
