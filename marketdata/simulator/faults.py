"""Fault injection switches of the simulator, changeable while it runs.

Tests flip attributes on `Simulator.faults` directly (same process) or POST a
JSON object of the same names to `/_sim/faults` (separate process); GET
returns the current values.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields


@dataclass
class Faults:
    #: abort every WebSocket connection this many seconds after it opened
    #: (TCP reset, no close frame); None = never
    drop_every: float | None = None
    #: fraction of data frames replaced by a truncated (unparseable) frame
    malformed_rate: float = 0.0
    #: stay connected, answer pings and control messages, send no data
    stall: bool = False
    #: refuse every credential (Alpaca 402, Finnhub HTTP 401)
    reject_auth: bool = False
    #: fraction of REST requests answered 429 (with Retry-After) / 500
    rest_429_rate: float = 0.0
    rest_500_rate: float = 0.0
    #: Retry-After seconds sent with injected 429s
    retry_after: int = 1
    #: refuse a second authenticated session for the same key (Alpaca 406,
    #: Finnhub HTTP 429 on the upgrade)
    connection_limit: bool = False
    _rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **changes: object) -> None:
        names = self.names()
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(self, name, _coerce(name, value))

    def reset(self) -> None:
        self.update(
            **{f.name: f.default for f in fields(self) if not f.name.startswith("_")}
        )

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls) if not f.name.startswith("_")}

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in sorted(self.names())}

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate


def _coerce(name: str, value: object) -> object:
    if name in {"stall", "reject_auth", "connection_limit"}:
        if isinstance(value, str):
            return value.lower() in {"1", "true", "yes", "on"}
        return bool(value)
    if name == "drop_every":
        if value in (None, "", 0, "0"):
            return None
        number = float(value)  # type: ignore[arg-type]
        if number <= 0:
            raise ValueError("drop_every must be positive")
        return number
    if name == "retry_after":
        return int(value)  # type: ignore[arg-type]
    number = float(value)  # type: ignore[arg-type]
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    return number
