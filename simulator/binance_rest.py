"""Binance spot REST as served by the simulator (providers.md §4):
`/api/v3/klines` (limit default 500, max 1000; the forming candle is the last
row when the range reaches now), `/api/v3/ping`, `/api/v3/time`. Errors
`{"code":-1121,"msg":"Invalid symbol."}` etc.; every response carries
`X-MBX-USED-WEIGHT-1M` (`binance_common.weight`).
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from simulator import candles, prices
from simulator.binance_common import (
    SYMBOL_CHARS,
    binance_symbols,
    error,
    num,
    weight,
)
from simulator.tape import NS
from simulator.wire import SIM, json_response


def _int_param(q, name: str) -> int | None:
    if name not in q:
        return None
    value = q[name]
    if not re.fullmatch(r"-?[0-9]{1,20}", value):
        raise ValueError(name)
    return int(value)


async def klines(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    headers = weight(request, 2)
    q = request.query
    raw_symbol = q.get("symbol", "")
    if not raw_symbol:
        return error(
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            headers,
        )
    if not SYMBOL_CHARS.match(raw_symbol):
        return error(
            -1100,
            "Illegal characters found in parameter 'symbol'; legal range is "
            "'^[A-Z0-9-_.]{1,20}$'.",
            headers,
        )
    symbol = binance_symbols().get(raw_symbol)
    if symbol is None:
        return error(-1121, "Invalid symbol.", headers)
    interval = q.get("interval", "")
    if not interval:
        return error(
            -1102,
            "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
            headers,
        )
    if interval not in candles.INTERVALS:
        return error(-1120, "Invalid interval.", headers)
    try:
        start_ms = _int_param(q, "startTime")
        end_ms = _int_param(q, "endTime")
        limit = _int_param(q, "limit")
    except ValueError as exc:
        return error(
            -1100,
            f"Illegal characters found in parameter '{exc}'; legal range is '^[0-9]{{1,20}}$'.",
            headers,
        )
    limit = 500 if limit is None else limit
    if limit <= 0:
        return error(-1100, "Illegal characters found in parameter 'limit'.", headers)
    limit = min(limit, 1000)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        return error(-1023, "Start time is greater than end time.", headers)
    rows = await _klines_rows(
        sim, symbol, raw_symbol, interval, start_ms, end_ms, limit
    )
    return json_response(rows, headers=headers)


async def _klines_rows(sim, symbol, binance_symbol, interval, start_ms, end_ms, limit):
    return await asyncio.get_running_loop().run_in_executor(
        None, _klines_sync, sim, symbol, interval, start_ms, end_ms, limit
    )


def _klines_sync(sim, symbol, interval, start_ms, end_ms, limit) -> list[list]:
    unit, amount = candles.INTERVALS[interval]
    now_ns = sim.now_ns()
    now_s = now_ns // NS
    tape = sim.tape
    first_day = prices.FIRST_DAY * 86400
    if start_ms is not None:
        first = candles.bucket_start(
            symbol, max(-(-start_ms // 1000), first_day), unit, amount
        )
        if first * 1000 < start_ms:
            first = candles.bucket_end(first, unit, amount)
        starts = []
        cursor = first
        stop = now_s if end_ms is None else min(now_s, end_ms // 1000)
        while cursor <= stop and len(starts) < limit:
            starts.append(cursor)
            cursor = candles.bucket_end(cursor, unit, amount)
    else:
        stop = now_s if end_ms is None else min(now_s, end_ms // 1000)
        last = candles.bucket_start(symbol, max(stop, first_day), unit, amount)
        starts = [last]
        while len(starts) < limit:
            previous = candles.bucket_start(symbol, starts[-1] - 1, unit, amount)
            if previous < first_day:
                break
            starts.append(previous)
        starts.reverse()
    if not starts:
        return []
    rows: list[list] = []
    closed_end = candles.bucket_end(starts[-1], unit, amount)
    if closed_end * NS > now_ns:
        closed_starts, running_start = starts[:-1], starts[-1]
    else:
        closed_starts, running_start = starts, None
    if closed_starts:
        lo, hi = closed_starts[0], candles.bucket_end(closed_starts[-1], unit, amount)
        bars = candles.aggregated(
            symbol, lo, hi, seed=sim.seed, hours="always", unit=unit, amount=amount
        )
        for i in range(len(bars)):
            start = int(bars.ts[i])
            end = candles.bucket_end(start, unit, amount)
            rows.append(
                [
                    start * 1000,
                    num(bars.o[i]),
                    num(bars.h[i]),
                    num(bars.l[i]),
                    num(bars.c[i]),
                    num(bars.volume[i]),
                    end * 1000 - 1,
                    num(bars.quote_volume[i]),
                    int(bars.n[i]),
                    num(bars.taker_buy_volume[i]),
                    num(bars.taker_buy_quote[i]),
                    "0",
                ]
            )
    if running_start is not None:
        end = candles.bucket_end(running_start, unit, amount)
        c = candles.candle(tape, symbol, running_start, end, now_ns)
        if c is not None:
            rows.append(
                [
                    c.start * 1000,
                    num(c.open),
                    num(c.high),
                    num(c.low),
                    num(c.close),
                    num(c.volume),
                    c.end * 1000 - 1,
                    num(c.quote_volume),
                    c.trades,
                    num(c.taker_buy_volume),
                    num(c.taker_buy_quote),
                    "0",
                ]
            )
    return rows


async def ping(request: web.Request) -> web.Response:
    return json_response({}, headers=weight(request, 1))


async def server_time(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    return json_response(
        {"serverTime": sim.now_ns() // 1_000_000}, headers=weight(request, 1)
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v3/klines", klines)
    app.router.add_get("/api/v3/ping", ping)
    app.router.add_get("/api/v3/time", server_time)
