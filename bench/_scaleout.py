"""The parts of `bench.bench_scaleout` (see its docstring): each starts its
processes, measures the 1- and 2-process forms one after the other, prints
its rows and stops everything it started.

Past ~400 lines: four benches of one table, each starting and stopping
its own processes.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# --- fan-out -----------------------------------------------------------------------
CONFLATE_MS = 100  # what ships: at most 10 frames/s per client


def fanout(*, quick: bool) -> list[dict]:
    """One Daphne with N and 2N clients, two Daphnes with N each."""
    from bench import bench_fanout as fan

    symbols, cookie = fan.prepare()
    # Per process: about half of what one Daphne holds on this class of machine
    # (see README), so that 2N on one process is past its limit.
    n = 300 if quick else 600
    seconds = 5.0 if quick else 8.0
    rows = []
    for procs, count in ((1, n), (1, 2 * n), (2, 2 * n)):
        ports = [fan.free_port() for _ in range(procs)]
        daphnes = [fan.start_daphne(port, CONFLATE_MS) for port in ports]
        try:
            result = asyncio.run(
                fan.run_clients(
                    ports=ports,
                    cookie=cookie,
                    symbols=symbols,
                    count=count,
                    seconds=seconds,
                    daphne_pids=[d.pid for d in daphnes],
                )
            )
        finally:
            for daphne in daphnes:
                stop(daphne)
        result["procs"] = procs
        # Clients the processes would hold with a core each: frames per
        # CPU-second of each Daphne (clients are spread evenly, so each sends
        # its share of the frames) over the 10 frames/s a client gets, summed.
        per_client = 1000 / CONFLATE_MS
        result["projected"] = sum(
            result["frames_per_s"] / procs / max(1e-6, cpu / 100) / per_client
            for cpu in result["cpu"]
        )
        result["holds"] = (
            result["p99"] <= fan.P99_TARGET_MS and result["complete"] == count
        )
        rows.append(result)
        cpu = " + ".join(f"{c:.0f}%" for c in result["cpu"])
        print(
            f"  {procs} x Daphne {count:5d} clients  p50 {result['p50']:7.1f} ms  "
            f"p99 {result['p99']:7.1f} ms  {result['frames_per_s']:7.0f} frames/s  "
            f"final state {result['complete']}/{count}  daphne cpu {cpu}  "
            f"clients cpu {result['client_cpu']:.0f}%  "
            f"{'holds' if result['holds'] else 'FAILS'}",
            flush=True,
        )
    return rows


# --- ingest ------------------------------------------------------------------------
def _workers_by_pid(pids: set[int]) -> dict[int, dict]:
    from streaming.selectors import feed_status_get

    return {
        w["pid"]: w
        for w in feed_status_get()["workers"]
        if w.get("pid") in pids and w["alive"]
    }


def _fresh(pids: set[int], after: dict[int, float]) -> dict[int, dict]:
    """Every worker's next health report newer than `after[pid]`."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        docs = _workers_by_pid(pids)
        if len(docs) == len(pids) and all(
            docs[p]["reported_at"] > after.get(p, 0) for p in pids
        ):
            return docs
        time.sleep(0.05)
    raise RuntimeError("a stream worker stopped reporting")


def ingest_run(symbols: list[str], *, shards: int, offered: int, window: float):
    from bench.bench_ingest import Simulator, cpu_seconds, worker_env

    sim, workers = Simulator(offered / len(symbols)), []
    try:
        for index in range(shards):
            workers.append(
                subprocess.Popen(
                    [
                        PYTHON,
                        "manage.py",
                        "start_streams",
                        "--provider",
                        "simulator",
                        "--shard",
                        f"{index}/{shards}",
                    ],
                    cwd=ROOT,
                    env=worker_env(sim.port, 10),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
        pids = {w.pid for w in workers}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            docs = _workers_by_pid(pids)
            if len(docs) == shards and all(
                d["connections"] and d["events_total"] > 0 for d in docs.values()
            ):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the stream workers did not start streaming")
        time.sleep(2.0)  # warm-up
        first = _fresh(pids, {})
        cpu0 = {w.pid: cpu_seconds(w.pid) for w in workers}
        time.sleep(window)
        last = _fresh(pids, {p: d["reported_at"] for p, d in first.items()})
        cpu1 = {w.pid: cpu_seconds(w.pid) for w in workers}
    finally:
        for worker in workers:
            stop(worker)
        sim.stop()
    per = []
    for pid in sorted(pids):
        events = last[pid]["events_total"] - first[pid]["events_total"]
        per.append(
            {
                "shard": last[pid]["shard"],
                "instruments": last[pid]["instruments"],
                "events_per_s": events
                / max(1e-6, last[pid]["reported_at"] - first[pid]["reported_at"]),
                "events_per_cpu_s": events / max(1e-6, cpu1[pid] - cpu0[pid]),
                "cpu": (cpu1[pid] - cpu0[pid])
                / max(1e-6, last[pid]["reported_at"] - first[pid]["reported_at"]),
            }
        )
    for row in per:
        print(
            f"  {shards} worker(s), shard {row['shard']}: {row['instruments']:3d} "
            f"instruments  {row['events_per_s']:9,.0f} events/s  "
            f"{row['events_per_cpu_s']:9,.0f} per CPU-s  cpu {row['cpu']:.0%}",
            flush=True,
        )
    total = sum(r["events_per_s"] for r in per)
    return {
        "events_per_s": total,
        # Where the busiest process would fill its core, if the others scale
        # with it: the sustained rate with a core per process.
        "projected": total / max(1e-6, max(r["cpu"] for r in per)),
        "per": per,
    }


def ingest(*, quick: bool) -> tuple[dict, dict, int]:
    from bench.bench_ingest import prepare

    symbols = prepare()
    # One simulator process generates the feed for both forms (the same
    # offered load); it, not the worker, is the limit past ~20,000/s here.
    offered = 10_000 if quick else 20_000
    window = 4.0 if quick else 6.0
    print(
        f"  offered {offered:,} events/s over {len(symbols)} instruments "
        "(one simulator process feeds every worker)"
    )
    one = ingest_run(symbols, shards=1, offered=offered, window=window)
    two = ingest_run(symbols, shards=2, offered=offered, window=window)
    return one, two, offered


# --- history -----------------------------------------------------------------------
def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving `database` (its process
    title names the database): where the history load's writes cost."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes()
            if (
                not title.startswith(b"postgres:")
                or f" {database} ".encode() not in title
            ):
                continue
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


HISTORY_SYMBOLS = ["AAPL", "MSFT", "NVDA", "SPY", "QQQ", "JPM"]


def history(*, quick: bool) -> tuple[dict, int]:
    """load_history through 1 and 2 Dramatiq worker processes, without and
    with a binding rate limit (requests/min, `SIMULATOR_RATE_LIMIT`)."""
    from bench._django import setup

    setup()
    from django.conf import settings
    from django.core.management import call_command

    from bench.bench_history import free_port, group_cpu_seconds, spawn
    from bench.bench_history import stop as stop_group
    from core.redis import redis_client
    from marketdata.models import Bar, BarRollup, Instrument, LoadJob
    from marketdata.services import instruments_upsert
    from marketdata.universe import universe_rows

    instruments_upsert(rows=universe_rows())
    symbols = HISTORY_SYMBOLS[:4] if quick else HISTORY_SYMBOLS
    instruments = list(Instrument.objects.filter(symbol__in=symbols))
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    requests = len(symbols) * 12  # a chunk per month, one page each
    limit = 120  # per minute: well below what two processes fetch unthrottled
    port = free_port()
    db = settings.DATABASES["default"]
    env = os.environ.copy()
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        TAPELINE_PROVIDER="simulator",
        SIMULATOR_PORT=str(port),
        SIMULATOR_SEED=str(settings.SIMULATOR_SEED),
        LOG_LEVEL="WARNING",
    )
    settings.TAPELINE_PROVIDER = "simulator"
    settings.SIMULATOR_PORT = port
    simulator, _ = spawn(
        ["simulate_exchange", "--port", str(port), "--hours", "nyse",
         "--seed", str(settings.SIMULATOR_SEED)], env,
    )  # fmt: skip
    print(
        f"  {len(symbols)} instruments x 2024 minutes ({requests} requests of one "
        f"page); rate-limited runs at {limit}/min (>= {requests / limit * 60:.0f} s)"
    )
    runs = {}
    try:
        time.sleep(2)
        for limited in (False, True):
            for processes in (1, 2):
                Bar.objects.filter(instrument__in=instruments).delete()
                BarRollup.objects.filter(instrument__in=instruments).delete()
                LoadJob.objects.all().delete()
                redis_client().flushdb()  # queues and the shared rate-limit state
                worker_env = {
                    **env,
                    "SIMULATOR_RATE_LIMIT": str(limit if limited else 60_000),
                }
                worker, log = spawn(
                    ["rundramatiq", "--processes", str(processes), "--threads", "2"],
                    worker_env,
                )
                try:
                    time.sleep(3)  # workers import and connect
                    cpu0 = (
                        group_cpu_seconds(simulator.pid),
                        group_cpu_seconds(worker.pid),
                    )
                    db0 = backend_cpu(db["NAME"])
                    started = time.perf_counter()
                    call_command(
                        "load_history", "--symbols", ",".join(symbols),
                        "--start", f"{start:%Y-%m-%d}", "--end", f"{end:%Y-%m-%d}",
                        "--poll", "0.5", stdout=io.StringIO(),
                    )  # fmt: skip
                    seconds = time.perf_counter() - started
                    sim_cpu = group_cpu_seconds(simulator.pid) - cpu0[0]
                    worker_cpu = group_cpu_seconds(worker.pid) - cpu0[1]
                    db1 = backend_cpu(db["NAME"])
                    db_cpu = sum(v - db0.get(pid, 0.0) for pid, v in db1.items())
                finally:
                    stop_group(worker)
                stored = Bar.objects.filter(instrument__in=instruments).count()
                runs[(processes, limited)] = {
                    "seconds": seconds,
                    "bars": stored,
                    "bars_per_s": stored / seconds,
                }
                print(
                    f"  {processes} worker process(es), "
                    f"{f'{limit}/min' if limited else 'no limit':>9}: {stored:,} bars in "
                    f"{seconds:5.1f} s = {stored / seconds:8,.0f} bars/s; CPU: "
                    f"simulator {sim_cpu / seconds:.0%}, workers {worker_cpu / seconds:.0%}, "
                    f"PostgreSQL backends {db_cpu / seconds:.0%}",
                    flush=True,
                )
    finally:
        stop_group(simulator)
    return runs, limit


# --- channel layer -----------------------------------------------------------------
LAYER_GROUPS = 50


def layer_child(role: str, seconds: str, rate: str) -> None:
    """A child process (`--layer-role`): `receive` prints `ready`, then one
    JSON line of the seqs it got per group; `publish` sends `rate` messages/s
    spread over the groups for `seconds` and prints what it sent."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    import django

    django.setup()
    from channels.layers import get_channel_layer

    from core.groups import symbol_group

    groups = [symbol_group(f"SCALE{i:02d}") for i in range(LAYER_GROUPS)]

    async def receive() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        for group in groups:
            await layer.group_add(group, channel)
        print("ready", flush=True)
        got: dict[str, list[int]] = {g: [] for g in groups}
        idle = 60.0  # until the publisher starts; then 3 s of quiet ends it
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), idle)
            except TimeoutError:
                break
            idle = 3.0
            got[message["group"]].append(message["seq"])
        print(json.dumps(got), flush=True)

    async def publish() -> None:
        layer = get_channel_layer()
        total = int(float(seconds) * float(rate))
        step = 1 / float(rate)
        begin = time.monotonic()
        for n in range(total):
            delay = begin + n * step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            group = groups[n % LAYER_GROUPS]
            seq = n // LAYER_GROUPS + 1
            await layer.group_send(
                group, {"type": "market.update", "group": group, "seq": seq}
            )
        print(json.dumps({"sent": total, "seconds": time.monotonic() - begin}))

    asyncio.run(receive() if role == "receive" else publish())


def layer_run(hosts: list[str], *, seconds: float, rate: int) -> dict:
    import redis

    env = {
        **os.environ,
        "CHANNEL_REDIS_URLS": ",".join(hosts),
        "CHANNELS_PREFIX": f"benchlayer{os.getpid()}",
    }

    def child(role: str) -> subprocess.Popen:
        return subprocess.Popen(
            [PYTHON, "-m", "bench.bench_scaleout", "--layer-role", role,
             str(seconds), str(rate)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    receiver, publisher = child("receive"), None
    try:
        if receiver.stdout.readline().strip() != "ready":
            raise RuntimeError("the layer receiver did not start")
        # Which server carries which groups: the sharding is real.
        carried = [
            len(redis.Redis.from_url(h).pubsub_channels(f"{env['CHANNELS_PREFIX']}*"))
            for h in hosts
        ]
        publisher = child("publish")
        sent = json.loads(publisher.communicate(timeout=seconds + 60)[0])
        got = json.loads(receiver.communicate(timeout=60)[0])
    finally:
        for process in (receiver, publisher):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(5)
    per_group = sent["sent"] // LAYER_GROUPS
    received = sum(len(seqs) for seqs in got.values())
    gaps = sum(1 for seqs in got.values() for a, b in pairwise(seqs) if b != a + 1)
    missing = sum(1 for seqs in got.values() if not seqs or seqs[-1] != per_group)
    result = {
        "sends_per_s": sent["sent"] / sent["seconds"],
        "delivered": received / sent["sent"],
        "gaps": gaps,
        "missing_last": missing,
        "carried": carried,
    }
    print(
        f"  {len(hosts)} Redis server(s): {sent['sent']:,} updates at "
        f"{result['sends_per_s']:,.0f}/s, delivered {result['delivered']:.2%}, "
        f"{gaps} seq gaps, {missing} groups without their last update; "
        f"group subscriptions per server {carried}",
        flush=True,
    )
    return result


def layer(*, quick: bool) -> tuple[dict, dict]:
    from django.conf import settings

    from tests.plugins.private_redis import PrivateRedis

    seconds = 4.0 if quick else 8.0
    rate = 3_000
    second = PrivateRedis()
    second.start()
    try:
        one = layer_run([settings.REDIS_URL], seconds=seconds, rate=rate)
        two = layer_run([settings.REDIS_URL, second.url(0)], seconds=seconds, rate=rate)
    finally:
        second.stop()
    return one, two
