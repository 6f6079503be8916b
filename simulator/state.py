"""What the simulator's sessions and handlers share: `ExchangeState`.

Configuration (seed, rate, hours, credentials, timeouts), the simulated clock,
the live `Tape`, the mutable `Faults`, the connected sessions and the per-key
counters the protocols keep. `server.Simulator` adds the process around it (the
aiohttp application, the ticker, threads); sessions and route handlers see only
this (`request.app[wire.SIM]`), so they never import the server.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from simulator import prices
from simulator.faults import PROTOCOLS, Faults
from simulator.tape import SimClock, Tape


class Feed(Protocol):
    """A source of frames the ticker hands out instead of the tape
    (`replay.Replayer`)."""

    path: str | Path

    def tick(self, sim: ExchangeState, loop_time: float) -> None: ...


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


class ExchangeState:
    """The simulated exchange's configuration and shared mutable state.
    `replayer` (a `Feed`) serves a recording instead of the simulated tape."""

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
        replayer: Feed | None = None,
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
        self.replayer = replayer
        #: the connected `session.Session`s
        self.sessions: set = set()
        self.alpaca_authenticated: dict[str, int] = {}
        self.finnhub_tokens: dict[str, int] = {}
        self.binance_weight: list[int] = [0, 0]  # [minute, weight used]
        self.stats = {"rest_requests": 0, "ticks": 0}

    # --- addresses ----------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def replay_path(self) -> str | None:
        return str(self.replayer.path) if self.replayer is not None else None

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def set_hours(self, hours: str) -> None:
        """Switch trading hours ("always"/"nyse"/"extended") for REST and stream alike."""
        if hours not in prices.HOURS_CHOICES:
            raise ValueError(f"hours must be one of {', '.join(prices.HOURS_CHOICES)}")
        self.hours = self.tape.hours = hours

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
