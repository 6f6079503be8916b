"""Control endpoints (`/_sim/...`) and REST fault injection.

- `GET /_sim/health`: seed, hours, rate, simulated clock, sessions.
- `GET /_sim/faults`, `POST /_sim/faults` (JSON object of `Faults` fields;
  `{"reset": true}` restores defaults): change faults of a running process.
  With `"protocol": "alpaca"|"finnhub"|"binance"` the switches (and a reset)
  concern that protocol only: its WebSocket sessions and its REST paths.
  `symbol_caps` (`{"alpaca": 30}`) sets per-connection symbol caps.
- `POST /_sim/clock` `{"speed": 30, "start": "2025-01-02T14:30:00Z"}`.

Injected REST errors use each provider's own error body: Alpaca
`{"code":42910000,"message":...}`, Finnhub `{"error":...}`, Binance
`{"code":-1003,"msg":...}`; 429s carry `Retry-After`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import orjson
from aiohttp import web

from simulator.faults import Faults
from simulator.wire import SIM, json_response


def provider_of(path: str) -> str:
    """The protocol a path belongs to (REST and WebSocket paths alike)."""
    if path.startswith("/api/v1") or path == "/":
        return "finnhub"
    if path.startswith(("/api/v3", "/ws", "/stream")):
        return "binance"
    return "alpaca"


_BODIES = {
    ("alpaca", 429): {"code": 42910000, "message": "rate limit exceeded"},
    ("alpaca", 500): {"code": 50010000, "message": "internal server error occurred"},
    ("finnhub", 429): {
        "error": "API limit reached. Please try again later. Remaining Limit: 0"
    },
    ("finnhub", 500): {"error": "Internal server error."},
    ("binance", 429): {
        "code": -1003,
        "msg": "Too many requests; current limit of IP(127.0.0.1) request weight per "
        "1 MINUTE is 6000. Please use WebSocket Streams for live updates to avoid bans.",
    },
    ("binance", 500): {
        "code": -1000,
        "msg": "An unknown error occured while processing the request.",
    },
}


@web.middleware
async def fault_middleware(request: web.Request, handler):
    sim = request.app[SIM]
    path = request.path
    is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
    if path.startswith("/_sim"):
        return await handler(request)
    provider = provider_of(path)
    if is_ws:
        # A frozen (stopped) process accepts TCP connections into its backlog
        # but never answers the upgrade: hang until the freeze ends.
        while sim.is_frozen(provider):
            await asyncio.sleep(0.05)
        return await handler(request)
    sim.stats["rest_requests"] += 1
    faults = sim.faults
    if faults.chance(faults.get("rest_429_rate", provider)):  # type: ignore[arg-type]
        return json_response(
            _BODIES[(provider, 429)],
            status=429,
            headers={"Retry-After": str(faults.get("retry_after", provider))},
        )
    if faults.chance(faults.get("rest_500_rate", provider)):  # type: ignore[arg-type]
        return json_response(_BODIES[(provider, 500)], status=500)
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    return json_response(
        {
            "status": "ok",
            "seed": sim.seed,
            "hours": sim.hours,
            "rate": sim.rate,
            "now": sim.clock.now().isoformat(),
            "clock_speed": sim.clock.speed,
            "sessions": len(sim.sessions),
            "sessions_by_protocol": sim.session_counts(),
            "replay": sim.replay_path,
            "stats": sim.stats,
        }
    )


async def get_faults(request: web.Request) -> web.Response:
    return json_response(request.app[SIM].faults.as_dict())


async def post_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    try:
        changes = orjson.loads(await request.read())
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        protocol = changes.pop("protocol", None)
        reset = changes.pop("reset", False)
        # Check everything before changing anything (a bad name or value
        # leaves the faults as they were).
        Faults().update(protocol, **changes)
        if reset:
            sim.faults.reset(protocol)
        sim.faults.update(protocol, **changes)
    except (ValueError, TypeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response(sim.faults.as_dict())


async def post_clock(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    try:
        body = orjson.loads(await request.read())
        start = body.get("start")
        sim.clock.set(
            speed=float(body.get("speed", 1.0)),
            start=datetime.fromisoformat(start.replace("Z", "+00:00"))
            if start
            else None,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response({"now": sim.clock.now().isoformat(), "speed": sim.clock.speed})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/health", health)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_post("/_sim/faults", post_faults)
    app.router.add_post("/_sim/clock", post_clock)
