"""The simulator process: `Simulator` serves `app.make_app` on one port and
runs the ticker that, every `tick_interval` real seconds, hands each session
the events of the elapsed window of the simulated clock (or lets a replayer
deliver recorded frames). State shared with sessions and handlers is in
`state.ExchangeState`, which `Simulator` extends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from aiohttp import web

from core.logs import RateLimitedLog
from simulator.app import make_app
from simulator.session import TickContext
from simulator.state import ExchangeState
from simulator.tape import NS

log = logging.getLogger(__name__)
# Ten ticks a second: a tick that keeps failing is one line a minute.
tick_failures = RateLimitedLog(log)

#: after a stall (e.g. a suspended laptop) the ticker catches up at most this
#: many real seconds of simulated time; shorter delays lose no trade
MAX_CATCHUP_SECONDS = 30.0


class Simulator(ExchangeState):
    """The exchange simulator (keyword options: `state.ExchangeState`). Use
    `start_in_thread()`/`stop_thread()` from synchronous code (tests),
    `await start()`/`await stop()` inside a loop, or `run_forever()` for the
    management command."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    # --- process ----------------------------------------------------------
    async def start(self) -> None:
        self._runner = web.AppRunner(
            make_app(self), access_log=None, handle_signals=False, shutdown_timeout=2.0
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
            except Exception as exc:  # one bad tick must not stop the feed
                tick_failures.error("tick", "simulator tick failed", exc=exc)
            else:
                tick_failures.recovered("tick", "simulator ticks work again")

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
