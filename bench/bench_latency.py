"""Latency budget, end to end: where the time goes from a provider's tick to
pixels in a browser, per stage, p50 / p99.

    python -m bench.bench_latency [--seconds 8] [--rate 1000] [--clients 1,100,500]
                                  [--pages 5]

Processes: the exchange simulator (Alpaca protocol, 50 instruments, `--rate`
events/s in all, sent in 20 ms batches), the stream worker (`manage.py
start_streams`, default `STREAM_PUBLISH_HZ`), one Daphne process (default
`WS_CONFLATE_MS`), Debian's Chromium driven by Playwright, and a process of
plain WebSocket clients. Every stage reads epoch times the pipeline itself
carries (one machine, one clock):

    ts             provider event time of the newest tick     (document)
    received_at    the worker read the frame with it          (document)
    pending_since  receive time of the oldest change carried  (document)
    normalized_at  the worker's loop applied that change      (document)
    due_at         the throttle allowed the update from       (document)
    published_at   the publisher took it (then Redis: snapshot, PUBLISH)
    hub_at         the Daphne hub read it from the channel layer (document)
    sent_at        the hub sent the frame                     (frame)
    arrived, rendered, next_frame   the page got the frame, the animation
                   frame that wrote it finished rendering, the next animation
                   frame began (static/js/paint_probe.js; test hooks on)

Part 1, a channel-layer consumer (what a web process's hub receives):
receive -> consumer for the newest tick of each update beyond the throttle's
hold (target p99 <= 20 ms at 1,000 events/s); the hold separately.
Part 2, N clients (1, 100, 500). A client is one WebSocket on /ws/market/
subscribed to the same 20 instruments (a 20-row watchlist) that reads every
frame: up to `--pages` of them are the real dashboard (GET /?list=..., its
JavaScript, rows painted) in one Chromium, each measuring tick -> pixels
(`next_frame` minus the newest tick's event time, target p99 <= 150 ms at 100
clients); the others are plain WebSocket clients in one Python process (what
hundreds of Chromium pages cost this 2-core machine would swamp every figure;
on the server they weigh the same), measuring hub sent -> frame read.

Over 400 lines: one run drives the whole stack (stream worker, Daphne,
WebSocket clients and Chromium pages), and both parts share the stage
definitions and the report.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from array import array
from datetime import datetime

os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CHANNELS_PREFIX", f"benchlat{os.getpid()}")
os.environ["BROWSER_TEST_HOOKS"] = "1"  # the pages' paint probe

from bench._cpu import CpuShares, pids_running
from bench.bench_fanout import free_port, start_daphne
from bench.bench_ingest import ROOT, Simulator, health, worker_env
from bench.bench_ingest import prepare as prepare_feed

CHROMIUM = "/usr/bin/chromium"
PER_CLIENT = 20
RECEIVE_TARGET_MS = 20.0
PIXELS_TARGET_MS = 150.0
PIXELS_TARGET_CLIENTS = 100
SENT_AT = re.compile(rb'^\{"type":"updates","sent_at":([0-9.]+)')
SNAPSHOT = re.compile(rb'^\{"type": ?"snapshot"')  # send_json puts a space


def pct(values, p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def row(name: str, values) -> str:
    return (
        f"  {name:46} p50 {pct(values, 0.5):7.1f} ms   p99 {pct(values, 0.99):7.1f} ms"
        f"   n={len(values)}"
    )


def verdict(value: float, target: float) -> str:
    if value <= target:
        return "met"
    return f"NOT met by {value / target:.1f}x" if value == value else "NOT measured"


def worker_stages(d: list[dict]) -> dict[str, list[float]]:
    """The worker's stages of updates (epoch-second fields), in ms. The hold
    is the throttle's (`STREAM_PUBLISH_HZ`); everything else is overhead."""
    ms = 1000.0
    both = [x for x in d if x["normalized_at"] and x["pending_since"]]
    return {
        "provider event -> receive (newest tick)": [
            (x["received_at"] - x["ts"]) * ms for x in d
        ],
        "receive -> normalized (oldest change)": [
            (x["normalized_at"] - x["pending_since"]) * ms for x in both
        ],
        "HOLD: throttle, oldest change": [
            max(0.0, x["due_at"] - x["normalized_at"]) * ms for x in both
        ],
        "HOLD: throttle, newest tick": [
            max(0.0, x["due_at"] - x["received_at"]) * ms for x in d
        ],
        "normalized, due -> published (loop, document)": [
            (x["published_at"] - max(x["due_at"], x["normalized_at"])) * ms
            for x in both
        ],
    }


def docs(rows: list, fields: tuple[str, ...]) -> list[dict]:
    out = []
    for values in rows:
        x = dict(zip(fields, values, strict=True))
        if x["ts"] and x["received_at"] and x["due_at"] and x["published_at"]:
            out.append(x)
    return out


# --- part 1: the channel-layer consumer ---------------------------------------------------
CONSUMER_FIELDS = (
    "ts", "received_at", "pending_since", "normalized_at", "due_at", "published_at",
    "consumer",
)  # fmt: skip


CONSUMER_WARMUP = 1.0  # seconds after the first update not counted


def consume(symbols: list[str], seconds: float, ready, results) -> None:
    """Child process: listen on the instruments' groups like a web process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
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
        samples = []
        # The first update's arrival starts a warm-up (this process's own
        # first reads: 50-65 ms late, 1 % of an 8 s window), then `seconds`.
        warm = None
        end = time.monotonic() + seconds + CONSUMER_WARMUP
        while (remaining := end - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(channel), remaining)
            except TimeoutError:
                break
            now = time.time()
            if warm is None:
                warm = time.monotonic() + CONSUMER_WARMUP
                end = warm + seconds
            doc = message.get("snapshot") or {}
            if not doc.get("ts") or time.monotonic() < warm:
                continue
            doc["ts"] = datetime.fromisoformat(doc["ts"]).timestamp()
            samples.append([doc.get(f) for f in CONSUMER_FIELDS[:-1]] + [now])
        results.put(samples)

    asyncio.run(run())


def report_consumer(samples: list) -> float:
    d = docs(samples, CONSUMER_FIELDS)
    ms = 1000.0
    stages = worker_stages(d) | {
        "published -> consumer (snapshot, channel layer)": [
            (x["consumer"] - x["published_at"]) * ms for x in d
        ],
        "receive -> consumer, newest tick (with hold)": [
            (x["consumer"] - x["received_at"]) * ms for x in d
        ],
        "receive -> consumer beyond the hold": [
            (x["consumer"] - max(x["received_at"], x["due_at"])) * ms for x in d
        ],
    }
    for name, values in stages.items():
        print(row(name, values))
    return pct(stages["receive -> consumer beyond the hold"], 0.99)


# --- part 2: clients ----------------------------------------------------------------------
def socket_clients(port, cookie, symbols, count, ready, go, stop, results) -> None:
    """Child process: `count` WebSocket clients; hub sent -> frame read, ms."""

    async def run():
        import orjson
        from websockets.asyncio.client import connect

        latencies = array("d")
        measuring = [False]
        subscribed = [0]
        all_in = asyncio.Event()
        subscribe = orjson.dumps({"action": "subscribe", "symbols": symbols}).decode()

        async def read(ws) -> None:
            try:
                while True:
                    message = await ws.recv(decode=False)
                    now = time.time()
                    match = SENT_AT.match(message)
                    if match and measuring[0]:
                        latencies.append((now - float(match[1])) * 1000)
                    elif SNAPSHOT.match(message):
                        subscribed[0] += 1
                        if subscribed[0] == count:
                            all_in.set()
            except Exception:  # closed at the end
                await ws.close()

        tasks = []
        for _ in range(count):
            # One handshake at a time: Daphne drops a socket its application
            # did not accept within 5 s, which a storm of them on a loaded
            # machine does not get.
            ws = await connect(
                f"ws://127.0.0.1:{port}/ws/market/",
                additional_headers={
                    "Cookie": f"sessionid={cookie}",
                    "Origin": f"http://127.0.0.1:{port}",
                },
                max_size=None, compression=None, open_timeout=120, ping_interval=None,
            )  # fmt: skip
            await ws.send(subscribe)
            tasks.append(asyncio.create_task(read(ws)))
        await asyncio.wait_for(all_in.wait(), 300)  # every one subscribed
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.05)
        measuring[0] = True
        while not stop.is_set():
            await asyncio.sleep(0.05)
        results.put(list(latencies))
        for task in tasks:
            task.cancel()

    asyncio.run(run())


async def pages_run(*, port, cookie, watchlist, count, settle, seconds, start, end):
    """`count` dashboard pages in one Chromium; `start()` once they settled,
    `end()` `seconds` later. Returns the paint samples, how many pages
    answered, samples dropped."""
    from playwright.async_api import async_playwright

    base = f"http://127.0.0.1:{port}"
    take = "window.tapelinePaintProbe ? window.tapelinePaintProbe.take() : null"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", "--no-first-run",
            ],
        )  # fmt: skip
        try:
            # One context (its own window) per page: tabs of one window behind
            # the active one get an animation frame about once a second, which
            # measured Chromium's background throttling, not the desk.
            pages = []
            for _ in range(count):
                context = await browser.new_context(
                    viewport={"width": 1000, "height": 700}
                )
                await context.add_cookies(
                    [{"name": "sessionid", "value": cookie, "url": base}]
                )
                page = await context.new_page()
                await page.goto(f"{base}/?list={watchlist}", timeout=120_000)
                pages.append(page)
            await asyncio.sleep(settle)
            for page in pages:
                await page.evaluate(take)
            start()
            await asyncio.sleep(seconds)
            end()
            # A page starved of CPU may not answer: it counts as not answered.
            chunks = await asyncio.gather(
                *(asyncio.wait_for(p.evaluate(take), 60) for p in pages),
                return_exceptions=True,
            )
        finally:
            await browser.close()
    answered = [c for c in chunks if isinstance(c, dict)]
    samples = [s for c in answered for s in c["samples"]]
    return samples, len(answered), sum(c["dropped"] for c in answered)


PAGE_FIELDS = (
    "ts", "received_at", "pending_since", "normalized_at", "due_at", "published_at",
    "hub_at", "sent_at", "arrived", "rendered", "next_frame",
)  # fmt: skip


def report_pages(samples: list, sockets: list[float]) -> float:
    rows = [[(v / 1000 if v else v) for v in s] for s in samples]  # ms -> s
    d = [x for x in docs(rows, PAGE_FIELDS) if x["hub_at"]]
    ms = 1000.0
    stages = worker_stages(d) | {
        "published -> hub (snapshot, channel layer)": [
            (x["hub_at"] - x["published_at"]) * ms for x in d
        ],
        "hub read -> hub sent (conflation)": [
            (x["sent_at"] - x["hub_at"]) * ms for x in d
        ],
        "hub sent -> page read the frame": [
            (x["arrived"] - x["sent_at"]) * ms for x in d
        ],
        "hub sent -> socket client read the frame": sockets,
        "page read -> frame rendered": [(x["rendered"] - x["arrived"]) * ms for x in d],
        "frame rendered -> next frame": [
            (x["next_frame"] - x["rendered"]) * ms for x in d
        ],
        "receive -> pixels, newest tick (with hold)": [
            (x["next_frame"] - x["received_at"]) * ms for x in d
        ],
        "receive -> pixels beyond the hold": [
            (x["next_frame"] - max(x["received_at"], x["due_at"])) * ms for x in d
        ],
        "TICK -> PIXELS (newest tick, with hold)": [
            (x["next_frame"] - x["ts"]) * ms for x in d
        ],
    }
    for name, values in stages.items():
        print(row(name, values))
    return pct(stages["TICK -> PIXELS (newest tick, with hold)"], 0.99)


def clients_run(*, port, cookie, watchlist, symbols, count, pages, seconds, roles):
    """The pages and the socket clients; `roles` (name -> pids) are the
    server's processes, whose CPU over the window is reported beside the
    clients' (`bench._cpu`)."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, stop_, results = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
    others = count - pages
    child = None
    if others:
        child = ctx.Process(
            target=socket_clients,
            args=(port, cookie, symbols, others, ready, go, stop_, results),
        )
        child.start()
        if not ready.wait(300):
            raise RuntimeError("the socket clients did not connect")
    shares = CpuShares(
        {
            "Chromium": lambda: pids_running("chromium"),
            "Playwright": lambda: pids_running("playwright/driver/node"),
            "socket clients": lambda: [child.pid] if child else [],
            **roles,
            "Redis": lambda: pids_running("redis-server"),
            "bench": lambda: [os.getpid()],
        }
    )

    def start() -> None:
        shares.begin()
        go.set()

    try:
        samples, answered, dropped = asyncio.run(
            pages_run(
                port=port, cookie=cookie, watchlist=watchlist, count=pages,
                settle=3.0, seconds=seconds, start=start, end=shares.end,
            )
        )  # fmt: skip
    finally:
        stop_.set()
    sockets = results.get(timeout=60) if child else []
    if child:
        child.join(10)
    return samples, answered, dropped, sockets, shares


# --- orchestration ------------------------------------------------------------------------
def prepare_browser_user(symbols: list[str]) -> tuple[str, int]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from marketdata.services import watchlist_create

    user, _ = get_user_model().objects.get_or_create(username="bench-latency")
    user.watchlists.all().delete()
    watchlist = watchlist_create(
        owner=user, name="Twenty", symbols=symbols[:PER_CLIENT]
    )
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value, watchlist.pk


def start_worker(sim: Simulator) -> subprocess.Popen:
    from core.redis import redis_client
    from streaming.selectors import health_key

    redis_client().delete(health_key())
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "start_streams", "--provider", "simulator"],
        cwd=ROOT, env=worker_env(sim.port, 10) | _defaults(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = health()
        if doc and doc["connections"] and doc["events_total"] > 0:
            return worker
        time.sleep(0.2)
    stop(worker)
    raise RuntimeError("the stream worker did not start streaming")


def _defaults() -> dict:
    """Default publishing settings, whatever the calling shell exported."""
    from django.conf import settings

    return {
        "STREAM_PUBLISH_HZ": str(settings.STREAM_PUBLISH_HZ),
        "WS_CONFLATE_MS": str(settings.WS_CONFLATE_MS),
    }


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=1000, help="events/s in all")
    parser.add_argument(
        "--clients",
        type=lambda v: [int(x) for x in v.split(",") if int(x) > 0],
        default=[1, 100, 500],
        help="client counts (0: the channel-layer consumer only)",
    )
    parser.add_argument(
        "--pages", type=int, default=5,
        help="of each client count, this many are Chromium dashboard pages",
    )  # fmt: skip
    args = parser.parse_args()
    # Killed: still stop the simulator, the worker and Daphne (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    symbols = prepare_feed()
    cookie, watchlist = prepare_browser_user(symbols)
    from django.conf import settings

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (shared; figures vary)")
    print(
        f"{len(symbols)} instruments, {args.rate:,} events/s offered; "
        f"STREAM_PUBLISH_HZ={settings.STREAM_PUBLISH_HZ} (throttle hold up to "
        f"{1000 / settings.STREAM_PUBLISH_HZ:.0f} ms past a burst of 2), "
        f"WS_CONFLATE_MS={settings.WS_CONFLATE_MS}"
    )
    sim = Simulator(args.rate / len(symbols))
    worker = daphne = None
    try:
        worker = start_worker(sim)
        time.sleep(2.0)
        ctx = multiprocessing.get_context("spawn")
        ready, results = ctx.Event(), ctx.Queue()
        consumer = ctx.Process(
            target=consume, args=(symbols, args.seconds, ready, results)
        )
        consumer.start()
        ready.wait(30)
        samples = results.get(timeout=args.seconds + 60)
        consumer.join(10)
        print(
            f"\nchannel-layer consumer, {len(samples) / args.seconds:,.0f} updates/s "
            f"(from {CONSUMER_WARMUP:.0f} s after its first update: its own start-up):"
        )
        p99 = report_consumer(samples)
        print(
            f"  TARGET receive -> consumer p99 <= {RECEIVE_TARGET_MS:.0f} ms beyond "
            f"the hold at 1,000 events/s: {p99:.1f} ms, "
            f"{verdict(p99, RECEIVE_TARGET_MS)}"
        )

        if not args.clients:
            return
        port = free_port()
        daphne = start_daphne(port, settings.WS_CONFLATE_MS, timeout=120)
        roles = {
            "Daphne": lambda: [daphne.pid],
            "worker": lambda: [worker.pid],
            "simulator": lambda: [sim.process.pid],
        }
        for count in args.clients:
            pages = min(count, args.pages)
            started = time.monotonic()
            try:
                paints, answered, dropped, sockets, shares = clients_run(
                    port=port, cookie=cookie, watchlist=watchlist,
                    symbols=symbols[:PER_CLIENT], count=count, pages=pages,
                    seconds=args.seconds, roles=roles,
                )  # fmt: skip
            except Exception as exc:  # report what could run
                print(f"\n{count} clients: could not run ({exc!r:.200})")
                continue
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(
                f"\n{count} clients: {pages} Chromium dashboard pages ({answered} "
                f"answered, {dropped} samples dropped) + {count - pages} WebSocket "
                f"clients, {PER_CLIENT} instruments each; "
                f"{len(paints) / args.seconds:,.0f} painted updates/s, "
                f"{time.monotonic() - started:.0f} s with start-up, load {load}:"
            )
            print(f"  {shares.line()}")
            p99 = report_pages(paints, sockets)
            target = "" if count == PIXELS_TARGET_CLIENTS else " (reported)"
            print(
                f"  TARGET tick -> pixels p99 <= {PIXELS_TARGET_MS:.0f} ms at "
                f"{PIXELS_TARGET_CLIENTS} clients{target}: {p99:.1f} ms at {count}, "
                f"{verdict(p99, PIXELS_TARGET_MS)}"
            )
    finally:
        if daphne is not None:
            stop(daphne)
        if worker is not None:
            stop(worker)
        sim.stop()


if __name__ == "__main__":
    main()
