"""Fault injection switches and symbol caps of the simulator, changeable while it runs.

Tests flip attributes on `Simulator.faults` directly (same process) or POST a
JSON object of the same names to `/_sim/faults` (separate process); GET
returns the current values.

Switches set without a protocol apply to every protocol (the global values,
the dataclass fields). `update(protocol="alpaca", freeze=True)` (or a POST
with `"protocol": "alpaca"`) sets an override that only that protocol's
sessions and REST endpoints see; an override wins over the global value until
`reset(protocol=...)` (or a global `reset()`) removes it. Code reads switches
through `get(name, protocol)`.

`symbol_caps` maps a protocol to its per-connection symbol cap (Alpaca:
distinct symbols over trades + quotes; Finnhub: symbols; Binance: streams).
No entry = the protocol's default: unlimited for Alpaca and Finnhub (plan
limits are off unless asked for), 1,024 streams for Binance (a limit of every
Binance connection). Updates merge: keys given are set, `null` restores the
default, other protocols keep theirs.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields

PROTOCOLS = ("alpaca", "finnhub", "binance")
#: caps that hold when `symbol_caps` has no entry for the protocol
DEFAULT_CAPS: dict[str, int | None] = {
    "alpaca": None,
    "finnhub": None,
    "binance": 1024,
}
_BOOLEANS = {"stall", "freeze", "reject_auth", "connection_limit"}
#: switches that are not per protocol
_GLOBAL_ONLY = {"symbol_caps"}


@dataclass
class Faults:
    #: abort every WebSocket connection this many seconds after it opened
    #: (TCP reset, no close frame); None = never
    drop_every: float | None = None
    #: fraction of data frames replaced by a truncated (unparseable) frame
    malformed_rate: float = 0.0
    #: stay connected, answer pings and control messages, send no data
    stall: bool = False
    #: a hung provider process (`kill -STOP`): its WebSockets stay open but
    #: send nothing (no data, no control frames), read nothing and answer no
    #: pings; new upgrades hang. Switched off, the sessions carry on where
    #: they were (queued client messages and pings are then answered).
    freeze: bool = False
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
    #: per-connection symbol caps by protocol (see the module docstring)
    symbol_caps: dict[str, int | None] = field(default_factory=dict)
    _overrides: dict[str, dict[str, object]] = field(default_factory=dict, repr=False)
    _rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, protocol: str | None = None, **changes: object) -> None:
        """Set switches globally, or for one protocol only. Nothing changes
        when any name or value is invalid (ValueError)."""
        names = self.names()
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        coerced = {name: _coerce(name, value) for name, value in changes.items()}
        if protocol is None:
            for name, value in coerced.items():
                if name == "symbol_caps":
                    value = _merge_caps(self.symbol_caps, value)
                setattr(self, name, value)
            return
        _check_protocol(protocol)
        scoped = set(coerced) & _GLOBAL_ONLY
        if scoped:
            raise ValueError(
                "symbol_caps already names its protocols; send it without "
                '"protocol", e.g. {"symbol_caps": {"alpaca": 30}}'
            )
        # Copy on write: the simulator's loop thread reads without the lock.
        with self._lock:
            merged = {**self._overrides.get(protocol, {}), **coerced}
            self._overrides = {**self._overrides, protocol: merged}

    def reset(self, protocol: str | None = None) -> None:
        """Back to defaults: everything, or one protocol's overrides."""
        if protocol is not None:
            _check_protocol(protocol)
            with self._lock:
                self._overrides = {
                    p: v for p, v in self._overrides.items() if p != protocol
                }
            return
        with self._lock:
            self._overrides = {}
        for f in fields(self):
            if not f.name.startswith("_") and f.name not in _GLOBAL_ONLY:
                setattr(self, f.name, f.default)
        self.symbol_caps = {}

    def get(self, name: str, protocol: str) -> object:
        """The value of switch `name` as `protocol`'s sessions see it."""
        override = self._overrides.get(protocol)
        if override is not None and name in override:
            return override[name]
        return getattr(self, name)

    def symbol_cap(self, protocol: str) -> int | None:
        """Per-connection cap of `protocol` (None = unlimited)."""
        caps = self.symbol_caps
        return caps[protocol] if protocol in caps else DEFAULT_CAPS[protocol]

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls) if not f.name.startswith("_")}

    def as_dict(self) -> dict:
        """Global values; `protocols`: the overrides set per protocol;
        `effective`: every switch as each protocol sees it, caps included."""
        out = {name: getattr(self, name) for name in sorted(self.names())}
        out["symbol_caps"] = dict(self.symbol_caps)
        out["protocols"] = {p: dict(v) for p, v in self._overrides.items()}
        out["effective"] = {
            p: {
                **{n: self.get(n, p) for n in sorted(self.names() - _GLOBAL_ONLY)},
                "symbol_cap": self.symbol_cap(p),
            }
            for p in PROTOCOLS
        }
        return out

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate


def _check_protocol(protocol: object) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}"
        )


def parse_caps(text: str) -> dict[str, int | None]:
    """`"alpaca=30,finnhub=50"` -> `{"alpaca": 30, "finnhub": 50}`
    (`=none` or `=0`: the protocol's default cap)."""
    caps: dict[str, object] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        protocol, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"expected PROTOCOL=N, got {part!r}")
        caps[protocol.strip()] = value.strip()
    return _coerce("symbol_caps", caps)  # type: ignore[return-value]


def _merge_caps(current: dict, changes: dict) -> dict:
    merged = {**current, **changes}
    return {p: v for p, v in merged.items() if v is not None}


def _coerce(name: str, value: object) -> object:
    if name in _BOOLEANS:
        if isinstance(value, str):
            return value.lower() in {"1", "true", "yes", "on"}
        return bool(value)
    if name == "symbol_caps":
        if not isinstance(value, dict):
            raise ValueError('symbol_caps must be an object like {"alpaca": 30}')
        caps: dict[str, int | None] = {}
        for protocol, cap in value.items():
            _check_protocol(protocol)
            if cap in (None, "", "none", "None", 0, "0"):
                caps[protocol] = None
                continue
            if isinstance(cap, bool):
                raise ValueError(f"symbol cap of {protocol} must be a whole number")
            try:
                number = int(cap)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                raise ValueError(
                    f"symbol cap of {protocol} must be a whole number, got {cap!r}"
                ) from None
            if number < 0:
                raise ValueError(f"symbol cap of {protocol} must be positive")
            caps[protocol] = number
        return caps
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
