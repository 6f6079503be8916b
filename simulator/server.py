"""The simulator's aiohttp application: one port, every provider's real paths.

`Simulator` owns the configuration, the live `Tape`, the mutable `Faults`,
the connected WebSocket sessions and a ticker that, every `tick_interval`
real seconds, hands each session the events of the elapsed window of the
simulated clock. Providers (`alpaca`, `finnhub`, `binance`) add routes and
session classes (on `session.Session`, re-exported here); this module holds
the rest of what they share. `symbol_caps` (protocol -> per-connection cap)
seeds `faults.symbol_caps`; caps and faults can change at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime

import orjson
from aiohttp import web

from simulator import prices
from simulator.faults import PROTOCOLS, Faults
from simulator.session import Session
from simulator.tape import NS, SimClock, Tape, Window

log = logging.getLogger("simulator")

#: after a stall (e.g. a suspended laptop) the ticker catches up at most this
#: many real seconds of simulated time; shorter delays lose no trade
MAX_CATCHUP_SECONDS = 30.0
#: the application key holding the running `Simulator`
SIM: web.AppKey = web.AppKey("simulator", object)


def _default_credentials() -> tuple[str, str, str]:
    try:
        from django.conf import settings

        return (
            settings.SIMULATOR_KEY_ID,
            settings.SIMULATOR_SECRET,
            settings.SIMULATOR_FINNHUB_TOKEN,
        )
    except Exception:  # Django not configured: the settings' own defaults
        return "SIMULATOR-KEY", "simulator-secret", "simtoken"


class TickContext:
    """Per-tick cache so a window and its encodings are built once per tick
    whatever the number of sessions wanting them."""

    def __init__(
        self, tape: Tape, t0_ns: int, t1_ns: int, *, quote_window_ns: int | None = None
    ) -> None:
        self.tape = tape
        self.t0_ns = t0_ns
        self.t1_ns = t1_ns
        self.quote_window_ns = quote_window_ns
        self.windows: dict[tuple[str, int], Window | None] = {}
        self.cache: dict[tuple, object] = {}

    def window(self, symbol: str, shift_ns: int = 0) -> Window | None:
        key = (symbol, shift_ns)
        if key not in self.windows:
            quotes_after = None
            if self.quote_window_ns is not None:
                quotes_after = self.t1_ns - shift_ns - self.quote_window_ns
            self.windows[key] = self.tape.window(
                symbol,
                self.t0_ns - shift_ns,
                self.t1_ns - shift_ns,
                quotes_after_ns=quotes_after,
            )
        return self.windows[key]

    def memo(self, key: tuple, build: Callable[[], object]) -> object:
        value = self.cache.get(key)
        if value is None:
            value = build()
            self.cache[key] = value
        return value


def json_frame(fragments: list[bytes]) -> bytes:
    return b"[" + b",".join(fragments) + b"]"


def msgpack_frame(fragments: list[bytes]) -> bytes:
    count = len(fragments)
    if count < 16:
        header = bytes([0x90 | count])
    elif count < 65536:
        header = b"\xdc" + count.to_bytes(2, "big")
    else:
        header = b"\xdd" + count.to_bytes(4, "big")
    return header + b"".join(fragments)


def json_response(
    payload: object, status: int = 200, headers: dict | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class Simulator:
    """The exchange simulator. Use `start_in_thread()`/`stop_thread()` from
    synchronous code (tests), `await start()`/`await stop()` inside a loop, or
    `run_forever()` for the management command."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 42,
        rate: float = 2.0,
        hours: str = "always",
        key_id: str | None = None,
        secret: str | None = None,
        finnhub_token: str | None = None,
        faults: Faults | None = None,
        clock_speed: float = 1.0,
        clock_start: datetime | None = None,
        tick_interval: float = 0.1,
        auth_timeout: float = 10.0,
        finnhub_ping_interval: float = 15.0,
        binance_ping_interval: float = 20.0,
        binance_pong_timeout: float = 60.0,
        replay: str | None = None,
        replay_speed: float = 1.0,
        max_batch: int = 1000,
        symbol_caps: dict[str, int | None] | None = None,
    ) -> None:
        if hours not in prices.HOURS_CHOICES:
            raise ValueError(f"hours must be one of {', '.join(prices.HOURS_CHOICES)}")
        if rate <= 0:
            raise ValueError("rate must be positive")
        default_key, default_secret, default_token = _default_credentials()
        self.host = host
        self.port = port
        self.seed = seed
        self.rate = rate
        self.hours = hours
        self.key_id = key_id if key_id is not None else default_key
        self.secret = secret if secret is not None else default_secret
        self.finnhub_token = (
            finnhub_token if finnhub_token is not None else default_token
        )
        self.faults = faults or Faults()
        if symbol_caps:
            self.faults.update(symbol_caps=symbol_caps)
        self.clock = SimClock(speed=clock_speed, start=clock_start)
        self.tape = Tape(seed=seed, hours=hours, rate=rate)
        self.tick_interval = tick_interval
        self.auth_timeout = auth_timeout
        self.finnhub_ping_interval = finnhub_ping_interval
        self.binance_ping_interval = binance_ping_interval
        self.binance_pong_timeout = binance_pong_timeout
        self.max_batch = max_batch
        self.replay_path = replay
        self.replay_speed = replay_speed
        self.replayer = None
        self.sessions: set[Session] = set()
        self.alpaca_authenticated: dict[str, int] = {}
        self.finnhub_tokens: dict[str, int] = {}
        self.binance_weight: list[int] = [0, 0]  # [minute, weight used]
        self.stats = {"rest_requests": 0, "ticks": 0}
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    # --- addresses ----------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def set_hours(self, hours: str) -> None:
        """Switch trading hours ("always"/"nyse"/"extended") for REST and stream alike."""
        if hours not in prices.HOURS_CHOICES:
            raise ValueError(f"hours must be one of {', '.join(prices.HOURS_CHOICES)}")
        self.hours = self.tape.hours = hours

    # --- application --------------------------------------------------------
    def make_app(self) -> web.Application:
        from simulator import alpaca, binance, control, finnhub, snapshots

        app = web.Application(middlewares=[control.fault_middleware])
        app[SIM] = self
        control.add_routes(app)
        alpaca.add_routes(app)
        binance.add_routes(app)
        snapshots.add_routes(app)
        finnhub.add_routes(app)  # last: it owns "/"
        return app

    async def start(self) -> None:
        if self.replay_path:
            from simulator.replay import Replayer

            self.replayer = Replayer(self.replay_path, speed=self.replay_speed)
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        # Each session's reading task performs the close handshake (see
        # Session.writer); clients that do not answer within a second are cut.
        sessions = list(self.sessions)
        for session in sessions:
            session.close_now(1001, "server shutdown")
        tasks = {s.task for s in sessions if s.task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for session in sessions:
            if session.task is None or not session.task.done():
                session.abort()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        last = self.now_ns()
        began = loop.time()
        while True:
            # Keep the cadence, but always yield so sockets are served.
            await asyncio.sleep(max(self.tick_interval - (loop.time() - began), 0.0))
            began = loop.time()
            now = self.now_ns()
            t0 = max(last, now - int(MAX_CATCHUP_SECONDS * self.clock.speed * NS))
            last = now
            try:
                self.tick(t0, now, loop.time())
            except Exception:  # one bad tick must not stop the feed
                log.exception("simulator tick failed")

    def tick(self, t0_ns: int, t1_ns: int, loop_time: float) -> None:
        self.stats["ticks"] += 1
        faults = self.faults
        for session in list(self.sessions):
            protocol = session.provider
            frozen = bool(faults.get("freeze", protocol))
            if frozen != session.frozen:
                session.set_frozen(frozen, loop_time)
            if frozen:  # a stopped process: no timers, no drops, no data
                continue
            drop_every = faults.get("drop_every", protocol)
            if drop_every and loop_time - session.opened_at >= drop_every:  # type: ignore[operator]
                session.abort()
                self.sessions.discard(session)
                continue
            session.on_tick(loop_time)
        if self.replayer is not None:
            self.replayer.tick(self, loop_time)
            return
        # Quotes fill the message budget; when ticks run late only the latest
        # two intervals of quotes are produced (trades and bars are complete).
        quote_window = int(2 * self.tick_interval * self.clock.speed * NS)
        ctx = TickContext(self.tape, t0_ns, t1_ns, quote_window_ns=quote_window)
        for session in list(self.sessions):
            if not session.frozen:
                session.pump(ctx)

    def is_frozen(self, protocol: str) -> bool:
        return bool(self.faults.get("freeze", protocol))

    def session_counts(self) -> dict[str, dict[str, int]]:
        """Open and frozen sessions per protocol (for `/_sim/health`)."""
        counts = {p: {"open": 0, "frozen": 0} for p in PROTOCOLS}
        for session in list(self.sessions):
            entry = counts.setdefault(session.provider, {"open": 0, "frozen": 0})
            entry["open"] += 1
            entry["frozen"] += session.frozen
        return counts

    # --- threads ------------------------------------------------------------
    def start_in_thread(self, timeout: float = 10.0) -> Simulator:
        ready = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._stopped = asyncio.Event()
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # report bind errors to the caller
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_until_complete(self._stopped.wait())
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=main, name="simulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("simulator did not start")
        if errors:
            raise errors[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
        self._thread = None

    def call(self, func: Callable, *args):
        """Run `func(*args)` on the simulator's loop thread and return its result."""
        if self._loop is None:
            return func(*args)
        future = asyncio.run_coroutine_threadsafe(_as_coro(func, *args), self._loop)
        return future.result(10)

    def run_forever(self, on_ready: Callable[[Simulator], None] | None = None) -> None:
        """Serve until SIGINT/SIGTERM (management command)."""
        import signal

        async def main() -> None:
            await self.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, stop.set)
            if on_ready is not None:
                on_ready(self)
            await stop.wait()
            await self.stop()

        asyncio.run(main())


async def _as_coro(func: Callable, *args):
    result = func(*args)
    if asyncio.iscoroutine(result):
        result = await result
    return result
