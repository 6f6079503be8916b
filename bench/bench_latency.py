"""Latency budget, end to end: where the time goes from a provider's tick to
pixels in a browser, per stage, p50 / p99.

    python -m bench.bench_latency [--seconds 8] [--rate 1000] [--clients 1,100,500]

Processes: the exchange simulator (Alpaca protocol, 50 instruments, `--rate`
events/s in all), the stream worker (`manage.py start_streams`, default
`STREAM_PUBLISH_HZ`), one Daphne process (default `WS_CONFLATE_MS`), and
Debian's Chromium driven by Playwright. Every stage reads times the pipeline
itself carries (all epoch clocks of this one machine):

    ts            provider event time (the simulator's trade/quote timestamp)
    received_at   the worker read the frame             (document)
    published_at  the worker sent the update            (document)
    pending_since receive time of the oldest change the update carries
    sent_at       the Daphne hub sent the frame         (frame)
    arrived       the page got the frame                (browser, socket.js probe)
    painted       the frame with the change was drawn   (browser, quotes.js probe)

Part 1, a channel-layer consumer (what the web process's hub receives): receive
-> consumer for the newest tick of each update (target p99 <= 20 ms at 1,000
events/s), and separately the throttle hold (oldest change's wait).
Part 2, N browser pages (1, 100, 500): the real dashboard (a 20-instrument
watchlist: GET /, socket.js, quotes.js) up to `--dashboard-max` pages (10:
a full dashboard costs Chromium most of a core per few dozen pages here), light
pages above (a same-origin page with a 20-cell table fed by the same
WebSocket and the same probe): tick -> pixels (target p99 <= 150 ms at 100
clients with default settings). "tick -> pixels" is the painted time minus
the event time of the newest tick the painted update carries.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CHANNELS_PREFIX", f"benchlat{os.getpid()}")

from bench.bench_fanout import free_port, start_daphne
from bench.bench_ingest import ROOT, Simulator, health, worker_env
from bench.bench_ingest import prepare as prepare_feed

CHROMIUM = "/usr/bin/chromium"
PER_CLIENT = 20
PAGES_PER_CONTEXT = 50
RECEIVE_TARGET_MS = 20.0
PIXELS_TARGET_MS = 150.0

# The light page: 20 cells painted from the same frames, the same probe.
LIGHT_PAGE = """
(symbols) => {
  window.__tapelinePaints = [];
  const cells = new Map();
  const table = document.createElement("table");
  for (const s of symbols) {
    const tr = table.insertRow(); tr.insertCell().textContent = s;
    cells.set(s, tr.insertCell());
  }
  document.body.replaceChildren(table);
  const pending = new Map(); let requested = false;
  const ws = new WebSocket(`ws://${location.host}/ws/market/`);
  ws.onopen = () => ws.send(JSON.stringify({action: "subscribe", symbols}));
  ws.onmessage = (e) => {
    const frame = JSON.parse(e.data);
    if (frame.type !== "updates") return;
    const arrived = performance.timeOrigin + performance.now();
    for (const d of frame.snapshots) {
      d.__probe = {sent: frame.sent_at * 1000, arrived}; pending.set(d.symbol, d);
    }
    if (!requested) { requested = true; requestAnimationFrame(paint); }
  };
  function paint() {
    requested = false;
    const batch = [...pending.values()]; pending.clear();
    for (const d of batch) cells.get(d.symbol).textContent = d.last;
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      const painted = performance.timeOrigin + performance.now();
      for (const d of batch) window.__tapelinePaints.push([Date.parse(d.ts),
        d.received_at * 1000, (d.published_at || 0) * 1000, d.__probe.sent,
        d.__probe.arrived, painted, (d.pending_since || d.received_at) * 1000]);
    };
    channel.port2.postMessage(null);
  }
}
"""


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def row(name: str, values: list[float], note: str = "") -> str:
    return (
        f"  {name:40} p50 {pct(values, 0.5):7.1f} ms   p99 {pct(values, 0.99):7.1f} ms"
        f"   n={len(values):<7d}{note}"
    )


# --- part 1: the channel-layer consumer ---------------------------------------------------
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
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(channel), remaining)
            except TimeoutError:
                break
            now = time.time()
            doc = message.get("snapshot") or {}
            if not doc.get("ts") or not doc.get("published_at"):
                continue
            samples.append(
                (
                    datetime.fromisoformat(doc["ts"]).timestamp(),
                    doc["received_at"],
                    doc["published_at"],
                    doc.get("pending_since") or doc["received_at"],
                    now,
                )
            )
        results.put(samples)

    asyncio.run(run())


def report_consumer(samples: list[tuple]) -> float:
    ms = 1000.0
    stages = {
        "provider event -> worker receive": [(r - t) * ms for t, r, *_ in samples],
        "receive -> published (newest tick)": [(p - r) * ms for _, r, p, *_ in samples],
        "published -> consumer": [(c - p) * ms for _, _, p, _, c in samples],
        "receive -> consumer (newest tick)": [
            (c - r) * ms for _, r, _, _, c in samples
        ],
        "throttle hold: oldest change -> published": [
            (p - o) * ms for _, _, p, o, _ in samples
        ],
        "tick -> consumer, oldest change": [(c - o) * ms for _, _, _, o, c in samples],
    }
    for name, values in stages.items():
        print(row(name, values))
    return pct(stages["receive -> consumer (newest tick)"], 0.99)


# --- part 2: browsers -------------------------------------------------------------------
async def browser_run(
    *, port: int, cookie: str, watchlist: int, symbols: list[str], count: int,
    seconds: float, dashboard_max: int,
) -> tuple[list[list[float]], str, int]:  # fmt: skip
    from playwright.async_api import async_playwright

    base = f"http://127.0.0.1:{port}"
    kind = "dashboard" if count <= dashboard_max else "light"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", "--no-first-run",
                # Light pages share a few renderer processes (memory: a
                # renderer per page is ~140 MB; 500 of them do not fit here).
                *(["--renderer-process-limit=8"] if kind == "light" else []),
            ],
        )  # fmt: skip
        pages = []
        try:
            for start in range(0, count, PAGES_PER_CONTEXT):
                context = await browser.new_context(
                    viewport={"width": 1000, "height": 700}
                )
                await context.add_cookies(
                    [{"name": "sessionid", "value": cookie, "url": base}]
                )
                if kind == "dashboard":
                    await context.add_init_script("window.__tapelinePaints = [];")
                for _ in range(min(PAGES_PER_CONTEXT, count - start)):
                    page = await context.new_page()
                    if kind == "dashboard":
                        await page.goto(
                            f"{base}/?list={watchlist}",
                            wait_until="domcontentloaded",
                            timeout=120_000,
                        )
                    else:
                        await page.goto(f"{base}/healthz", timeout=120_000)
                        await page.evaluate(LIGHT_PAGE, symbols[:PER_CLIENT])
                    pages.append(page)
            await asyncio.sleep(3.0)  # subscriptions and snapshots settle
            await asyncio.gather(
                *(
                    asyncio.wait_for(
                        p.evaluate("window.__tapelinePaints.splice(0)"), 60
                    )
                    for p in pages
                ),
                return_exceptions=True,
            )
            await asyncio.sleep(seconds)
            # A page starved of CPU may not answer: it counts as not answered.
            chunks = await asyncio.gather(
                *(
                    asyncio.wait_for(
                        p.evaluate("window.__tapelinePaints.splice(0)"), 60
                    )
                    for p in pages
                ),
                return_exceptions=True,
            )
        finally:
            await browser.close()
    alive = sum(1 for c in chunks if isinstance(c, list))
    paints = [s for c in chunks if isinstance(c, list) for s in c]
    return paints, kind, alive


def report_browser(paints: list[list[float]]) -> float:
    # [ts, received, published, sent, arrived, painted, pending_since] in ms
    stages = {
        "provider event -> worker receive": [p[1] - p[0] for p in paints],
        "receive -> published": [p[2] - p[1] for p in paints],
        "published -> hub sent (incl. conflation)": [p[3] - p[2] for p in paints],
        "hub sent -> page received": [p[4] - p[3] for p in paints],
        "page received -> painted": [p[5] - p[4] for p in paints],
        "receive -> painted": [p[5] - p[1] for p in paints],
        "tick -> pixels (newest tick)": [p[5] - p[0] for p in paints],
        "tick -> pixels, oldest change": [p[5] - p[6] + (p[1] - p[0]) for p in paints],
    }
    for name, values in stages.items():
        print(row(name, values))
    return pct(stages["tick -> pixels (newest tick)"], 0.99)


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
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 100, 500],
    )
    parser.add_argument(
        "--dashboard-max", type=int, default=10,
        help="real dashboard pages up to this count, light pages above",
    )  # fmt: skip
    args = parser.parse_args()
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
            f"\nchannel-layer consumer, {len(samples) / args.seconds:,.0f} updates/s:"
        )
        p99 = report_consumer(samples)
        verdict = "meets" if p99 <= RECEIVE_TARGET_MS else "MISSES"
        print(
            f"  receive -> consumer p99 {p99:.1f} ms (target <= {RECEIVE_TARGET_MS:.0f} ms "
            f"beyond the hold): {verdict}"
        )

        port = free_port()
        daphne = start_daphne(port, settings.WS_CONFLATE_MS)
        for count in args.clients:
            started = time.monotonic()
            try:
                paints, kind, alive = asyncio.run(
                    browser_run(
                        port=port, cookie=cookie, watchlist=watchlist,
                        symbols=symbols, count=count, seconds=args.seconds,
                        dashboard_max=args.dashboard_max,
                    )
                )  # fmt: skip
            except Exception as exc:  # report what could run
                print(f"\n{count} browser pages: could not run ({exc!r:.200})")
                continue
            print(
                f"\n{count} browser pages ({kind} page, {PER_CLIENT} instruments "
                f"each, {alive} answered), {len(paints) / args.seconds:,.0f} painted "
                f"updates/s, {time.monotonic() - started:.0f} s with start-up:"
            )
            p99 = report_browser(paints)
            verdict = "meets" if p99 <= PIXELS_TARGET_MS else "MISSES"
            print(
                f"  tick -> pixels p99 {p99:.1f} ms (target <= {PIXELS_TARGET_MS:.0f} ms "
                f"at 100 clients): {verdict}"
            )
    finally:
        if daphne is not None:
            stop(daphne)
        if worker is not None:
            stop(worker)
        sim.stop()


if __name__ == "__main__":
    main()
