"""The simulator's aiohttp application: one port, every provider's real paths."""

from __future__ import annotations

from aiohttp import web

from simulator import (
    alpaca_rest,
    alpaca_stream,
    binance_rest,
    binance_stream,
    control,
    finnhub,
    snapshots,
)
from simulator.state import ExchangeState
from simulator.wire import SIM


def make_app(sim: ExchangeState) -> web.Application:
    """Routes of every protocol, the control endpoints and the REST fault
    middleware, serving `sim`."""
    app = web.Application(middlewares=[control.fault_middleware])
    app[SIM] = sim
    control.add_routes(app)
    alpaca_stream.add_routes(app)
    alpaca_rest.add_routes(app)
    binance_stream.add_routes(app)
    binance_rest.add_routes(app)
    snapshots.add_routes(app)
    finnhub.add_routes(app)  # last: it owns "/"
    return app
