"""What the Binance stream and REST halves (and `snapshots`) share: the
simulator's symbols as Binance names them, number formatting, the request
weight header and the REST error body."""

from __future__ import annotations

import re
from functools import lru_cache

from aiohttp import web

from simulator import prices
from simulator.tape import NS
from simulator.wire import SIM, json_response

SYMBOL_CHARS = re.compile(r"^[A-Z0-9\-_.]{1,20}$")


@lru_cache(maxsize=1)
def binance_symbols() -> dict[str, str]:
    """Binance symbol (upper case) -> canonical symbol."""
    out = {}
    for symbol in prices.known_symbols():
        binance = prices.universe_row(symbol)["provider_symbols"].get("binance")
        if binance:
            out[binance] = symbol
    return out


def num(value: float) -> str:
    return f"{value:.8f}"


def weight(request: web.Request, cost: int) -> dict[str, str]:
    sim = request.app[SIM]
    minute = sim.now_ns() // NS // 60
    used = sim.binance_weight
    if used[0] != minute:
        used[0], used[1] = minute, 0
    used[1] += cost
    return {"X-MBX-USED-WEIGHT-1M": str(used[1])}


def error(code: int, msg: str, headers: dict, status: int = 400) -> web.Response:
    return json_response({"code": code, "msg": msg}, status=status, headers=headers)
