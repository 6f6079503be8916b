"""Binance spot market data as served by the simulator (providers.md §4).

Stream: raw `/ws/<stream>[/<stream>...]` (bare payloads) and combined
`/stream?streams=a/b` (`{"stream":..,"data":..}`); live `SUBSCRIBE`,
`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`/`GET_PROPERTY combined`,
errors nested as `{"error":{"code":..,"msg":..},"id":..}`. Streams:
`<symbol>@trade`, `@aggTrade`, `@bookTicker`, `@kline_<interval>` (pushed
every 2 s with `x:false`, final push `x:true`). Stream names are
case-sensitive: only lowercase symbols deliver. At most 1,024 streams per
connection (`faults.symbol_caps["binance"]` changes the cap): a SUBSCRIBE
beyond it answers `{"error":{"code":4,"msg":"Too many subscriptions"},"id":..}`
(the form providers.md 4.1 quotes) and changes nothing. More than 5 incoming
messages (text, ping or pong) in a second closes the connection with 1008
"Too many requests" (providers.md 5, Binance 5). The server
pings every `binance_ping_interval` s and drops clients that send no pong
for `binance_pong_timeout` s.

REST: `/api/v3/klines` (limit default 500, max 1000; the forming candle is
the last row when the range reaches now), `/api/v3/ping`, `/api/v3/time`.
Errors `{"code":-1121,"msg":"Invalid symbol."}` etc.; every response carries
`X-MBX-USED-WEIGHT-1M`.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from functools import lru_cache

import orjson
from aiohttp import WSMsgType, web

from simulator import candles, prices
from simulator.session import Session, TickContext
from simulator.tape import NS
from simulator.wire import SIM, json_response

MAX_INCOMING_PER_SECOND = 5
KLINE_PUSH_NS = 2 * NS
_STREAM = re.compile(
    r"^([a-z0-9]+)@(trade|aggTrade|bookTicker|kline_([0-9]+[a-zA-Z]))$"
)
_ID_STRING = re.compile(r"^[A-Za-z0-9]{1,36}$")
_SYMBOL_CHARS = re.compile(r"^[A-Z0-9\-_.]{1,20}$")


@lru_cache(maxsize=1)
def binance_symbols() -> dict[str, str]:
    """Binance symbol (upper case) -> canonical symbol."""
    out = {}
    for symbol in prices.known_symbols():
        binance = prices.universe_row(symbol)["provider_symbols"].get("binance")
        if binance:
            out[binance] = symbol
    return out


def _lower_symbols() -> dict[str, tuple[str, str]]:
    return {k.lower(): (k, v) for k, v in binance_symbols().items()}


def _num(value: float) -> str:
    return f"{value:.8f}"


class BinanceSession(Session):
    provider = "binance"

    def __init__(self, sim, request, ws, streams: list[str], combined: bool) -> None:
        super().__init__(sim, request, ws)
        self.streams: list[str] = list(dict.fromkeys(streams))
        self.combined = combined
        self.incoming: deque[float] = deque()
        self.last_ping = self.opened_at
        self.last_pong = self.opened_at

    # --- incoming -----------------------------------------------------------
    def _count_incoming(self) -> bool:
        """False (and the connection closing) when over the inbound limit."""
        now = asyncio.get_running_loop().time()
        self.incoming.append(now)
        while self.incoming and now - self.incoming[0] > 1.0:
            self.incoming.popleft()
        if len(self.incoming) > MAX_INCOMING_PER_SECOND and not self.closing:
            self.queue.clear()
            self.close_after_queue(1008, "Too many requests")
            return False
        return not self.closing

    async def on_ping_pong(self, msg) -> None:
        if not self._count_incoming():
            return
        if msg.type == WSMsgType.PING:
            data = msg.data

            async def pong() -> None:
                await self.ws.pong(data)

            self.send_control_callable(pong)
        else:
            self.last_pong = self._loop_time()

    def send_control_callable(self, func) -> None:
        self.queue.append(func)
        self.wakeup.set()

    def _loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def reply(self, payload: dict) -> None:
        self.send_control(orjson.dumps(payload))

    def fail(self, code: int, message: str, request_id: object = None) -> None:
        self.reply({"error": {"code": code, "msg": message}, "id": request_id})

    async def on_message(self, msg) -> None:
        if not self._count_incoming():
            return
        try:
            data = orjson.loads(msg.data)
        except orjson.JSONDecodeError as exc:
            self.fail(3, f"Invalid JSON: {exc}")
            return
        if not isinstance(data, dict):
            self.fail(2, "Invalid request: request must be a JSON object")
            return
        request_id = data.get("id")
        valid_id = (
            request_id is None
            or (isinstance(request_id, int) and not isinstance(request_id, bool))
            or (isinstance(request_id, str) and _ID_STRING.match(request_id))
        )
        if not valid_id:
            self.fail(2, "Invalid request: invalid value for 'id'", None)
            return
        method = data.get("method")
        params = data.get("params", [])
        if method is None:
            self.fail(2, "Invalid request: missing field `method`", request_id)
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(
                isinstance(p, str) for p in params
            ):
                self.fail(1, "Invalid value type: expected Vec<String>", request_id)
                return
            if method == "SUBSCRIBE":
                merged = list(dict.fromkeys(self.streams + params))
                cap = self.sim.faults.symbol_cap("binance")
                if cap is not None and len(merged) > cap:
                    self.fail(4, "Too many subscriptions", request_id)
                    return
                self.streams = merged
            else:
                self.streams = [s for s in self.streams if s not in set(params)]
            self.reply({"result": None, "id": request_id})
        elif method == "LIST_SUBSCRIPTIONS":
            self.reply({"result": list(self.streams), "id": request_id})
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or params[0] != "combined":
                self.fail(0, "Unknown property", request_id)
                return
            if method == "GET_PROPERTY":
                self.reply({"result": self.combined, "id": request_id})
            elif len(params) != 2 or not isinstance(params[1], bool):
                self.fail(1, "Invalid value type: expected Boolean", request_id)
            else:
                self.combined = params[1]
                self.reply({"result": None, "id": request_id})
        else:
            self.fail(2, f"Invalid request: unknown variant `{method}`", request_id)

    def on_thaw(self, frozen_for: float) -> None:
        super().on_thaw(frozen_for)
        self.last_ping += frozen_for
        self.last_pong += frozen_for

    def on_tick(self, loop_time: float) -> None:
        sim = self.sim
        if loop_time - self.last_pong > sim.binance_pong_timeout and not self.closing:
            self.close_after_queue(1008, "Pong timeout")
            return
        if loop_time - self.last_ping >= sim.binance_ping_interval:
            self.last_ping = loop_time

            async def ping() -> None:
                await self.ws.ping(str(int(loop_time * 1000)).encode())

            self.send_control_callable(ping)

    # --- data ---------------------------------------------------------------
    def pump(self, ctx: TickContext) -> None:
        lower = _lower_symbols()
        frames: list[bytes] = []
        for name in self.streams:
            match = _STREAM.match(name)
            if not match or match.group(1) not in lower:
                continue
            binance_symbol, symbol = lower[match.group(1)]
            kind = match.group(2)
            interval = match.group(3)
            payloads = ctx.memo(
                ("binance", name),
                lambda k=kind, b=binance_symbol, s=symbol, i=interval: _payloads(
                    ctx, k, b, s, i
                ),
            )
            if self.combined:
                prefix = b'{"stream":' + orjson.dumps(name) + b',"data":'
                frames.extend(prefix + p + b"}" for p in payloads)
            else:
                frames.extend(payloads)
        for frame in frames:
            self.send_data(frame)


def _payloads(
    ctx: TickContext, kind: str, binance_symbol: str, symbol: str, interval
) -> list:
    if kind.startswith("kline_"):
        return _kline_payloads(ctx, binance_symbol, symbol, interval)
    win = ctx.window(symbol)
    out: list[bytes] = []
    if win is None:
        return out
    if kind in ("trade", "aggTrade") and len(win.trade_ts):
        for t, p, s, b, i in zip(
            win.trade_ts.tolist(),
            win.trade_price.tolist(),
            win.trade_size.tolist(),
            win.trade_buy.tolist(),
            win.trade_id.tolist(),
            strict=True,
        ):
            ms = t // 1_000_000
            if kind == "trade":
                body = {
                    "e": "trade",
                    "E": ms,
                    "s": binance_symbol,
                    "t": i,
                    "p": _num(p),
                    "q": _num(s),
                    "T": ms,
                    "m": not b,
                    "M": True,
                }
            else:
                body = {
                    "e": "aggTrade",
                    "E": ms,
                    "s": binance_symbol,
                    "a": i,
                    "p": _num(p),
                    "q": _num(s),
                    "f": i,
                    "l": i,
                    "T": ms,
                    "m": not b,
                    "M": True,
                }
            out.append(orjson.dumps(body))
    elif kind == "bookTicker" and len(win.quote_ts):
        for t, bp, bs, ap, as_ in zip(
            win.quote_ts.tolist(),
            win.bid.tolist(),
            win.bid_size.tolist(),
            win.ask.tolist(),
            win.ask_size.tolist(),
            strict=True,
        ):
            out.append(
                orjson.dumps(
                    {
                        "u": t // 1000,
                        "s": binance_symbol,
                        "b": _num(bp),
                        "B": _num(bs),
                        "a": _num(ap),
                        "A": _num(as_),
                    }
                )
            )
    return out


def kline_row_payload(c: candles.Candle, binance_symbol: str, interval: str) -> dict:
    return {
        "t": c.start * 1000,
        "T": c.end * 1000 - 1,
        "s": binance_symbol,
        "i": interval,
        "f": c.first_id,
        "L": c.last_id,
        "o": _num(c.open),
        "c": _num(c.close),
        "h": _num(c.high),
        "l": _num(c.low),
        "v": _num(c.volume),
        "n": c.trades,
        "x": c.closed,
        "q": _num(c.quote_volume),
        "V": _num(c.taker_buy_volume),
        "Q": _num(c.taker_buy_quote),
        "B": "0",
    }


def _kline_payloads(ctx: TickContext, binance_symbol: str, symbol: str, interval: str):
    if interval not in candles.INTERVALS:
        return []
    unit, amount = candles.INTERVALS[interval]
    tape = ctx.tape
    t0, t1 = ctx.t0_ns, ctx.t1_ns
    out: list[bytes] = []
    # Final pushes for every candle that closed inside the window.
    start = candles.bucket_start(symbol, t0 // NS, unit, amount)
    while True:
        end = candles.bucket_end(start, unit, amount)
        if end * NS > t1:
            break
        if end * NS > t0:
            final = candles.candle(tape, symbol, start, end, end * NS)
            if final is not None:
                out.append(_kline_event(final, binance_symbol, interval, end * NS))
        start = end
    # A running update when a 2-second push boundary was crossed.
    if t1 // KLINE_PUSH_NS > t0 // KLINE_PUSH_NS:
        start = candles.bucket_start(symbol, t1 // NS, unit, amount)
        end = candles.bucket_end(start, unit, amount)
        running = candles.candle(tape, symbol, start, end, t1)
        if running is not None and not running.closed:
            out.append(_kline_event(running, binance_symbol, interval, t1))
    return out


def _kline_event(
    c: candles.Candle, binance_symbol: str, interval: str, at_ns: int
) -> bytes:
    return orjson.dumps(
        {
            "e": "kline",
            "E": at_ns // 1_000_000,
            "s": binance_symbol,
            "k": kline_row_payload(c, binance_symbol, interval),
        }
    )


async def raw_stream(request: web.Request) -> web.StreamResponse:
    tail = request.match_info.get("streams", "")
    streams = [s for s in tail.split("/") if s]
    return await _serve(request, streams, combined=False)


async def combined_stream(request: web.Request) -> web.StreamResponse:
    streams = [s for s in request.query.get("streams", "").split("/") if s]
    return await _serve(request, streams, combined=True)


async def _serve(request: web.Request, streams: list[str], *, combined: bool):
    ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
    if not ws.can_prepare(request).ok:
        return json_response(
            {"code": -1, "msg": "websocket upgrade expected"}, status=400
        )
    cap = request.app[SIM].faults.symbol_cap("binance")
    if cap is not None and len(streams) > cap:
        return json_response({"code": -1, "msg": "Too many streams"}, status=400)
    await ws.prepare(request)
    return await BinanceSession(request.app[SIM], request, ws, streams, combined).run()


# --- REST ----------------------------------------------------------------------


def _weight(request: web.Request, cost: int) -> dict[str, str]:
    sim = request.app[SIM]
    minute = sim.now_ns() // NS // 60
    used = sim.binance_weight
    if used[0] != minute:
        used[0], used[1] = minute, 0
    used[1] += cost
    return {"X-MBX-USED-WEIGHT-1M": str(used[1])}


def _error(code: int, msg: str, headers: dict, status: int = 400) -> web.Response:
    return json_response({"code": code, "msg": msg}, status=status, headers=headers)


def _int_param(q, name: str) -> int | None:
    if name not in q:
        return None
    value = q[name]
    if not re.fullmatch(r"-?[0-9]{1,20}", value):
        raise ValueError(name)
    return int(value)


async def klines(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    headers = _weight(request, 2)
    q = request.query
    raw_symbol = q.get("symbol", "")
    if not raw_symbol:
        return _error(
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            headers,
        )
    if not _SYMBOL_CHARS.match(raw_symbol):
        return _error(
            -1100,
            "Illegal characters found in parameter 'symbol'; legal range is "
            "'^[A-Z0-9-_.]{1,20}$'.",
            headers,
        )
    symbol = binance_symbols().get(raw_symbol)
    if symbol is None:
        return _error(-1121, "Invalid symbol.", headers)
    interval = q.get("interval", "")
    if not interval:
        return _error(
            -1102,
            "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
            headers,
        )
    if interval not in candles.INTERVALS:
        return _error(-1120, "Invalid interval.", headers)
    try:
        start_ms = _int_param(q, "startTime")
        end_ms = _int_param(q, "endTime")
        limit = _int_param(q, "limit")
    except ValueError as exc:
        return _error(
            -1100,
            f"Illegal characters found in parameter '{exc}'; legal range is '^[0-9]{{1,20}}$'.",
            headers,
        )
    limit = 500 if limit is None else limit
    if limit <= 0:
        return _error(-1100, "Illegal characters found in parameter 'limit'.", headers)
    limit = min(limit, 1000)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        return _error(-1023, "Start time is greater than end time.", headers)
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
                    _num(bars.o[i]),
                    _num(bars.h[i]),
                    _num(bars.l[i]),
                    _num(bars.c[i]),
                    _num(bars.volume[i]),
                    end * 1000 - 1,
                    _num(bars.quote_volume[i]),
                    int(bars.n[i]),
                    _num(bars.taker_buy_volume[i]),
                    _num(bars.taker_buy_quote[i]),
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
                    _num(c.open),
                    _num(c.high),
                    _num(c.low),
                    _num(c.close),
                    _num(c.volume),
                    c.end * 1000 - 1,
                    _num(c.quote_volume),
                    c.trades,
                    _num(c.taker_buy_volume),
                    _num(c.taker_buy_quote),
                    "0",
                ]
            )
    return rows


async def ping(request: web.Request) -> web.Response:
    return json_response({}, headers=_weight(request, 1))


async def server_time(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    return json_response(
        {"serverTime": sim.now_ns() // 1_000_000}, headers=_weight(request, 1)
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws", raw_stream)
    app.router.add_get("/ws/{streams:.+}", raw_stream)
    app.router.add_get("/stream", combined_stream)
    app.router.add_get("/api/v3/klines", klines)
    app.router.add_get("/api/v3/ping", ping)
    app.router.add_get("/api/v3/time", server_time)
