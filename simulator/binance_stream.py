"""Binance spot streams as served by the simulator (providers.md §4).

Raw `/ws/<stream>[/<stream>...]` (bare payloads) and combined
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
"""

from __future__ import annotations

import asyncio
import re
from collections import deque

import orjson
from aiohttp import WSMsgType, web

from simulator import candles
from simulator.binance_common import binance_symbols, num
from simulator.session import Session, TickContext
from simulator.tape import NS
from simulator.wire import SIM, json_response

MAX_INCOMING_PER_SECOND = 5
KLINE_PUSH_NS = 2 * NS
_STREAM = re.compile(
    r"^([a-z0-9]+)@(trade|aggTrade|bookTicker|kline_([0-9]+[a-zA-Z]))$"
)
_ID_STRING = re.compile(r"^[A-Za-z0-9]{1,36}$")


def _lower_symbols() -> dict[str, tuple[str, str]]:
    return {k.lower(): (k, v) for k, v in binance_symbols().items()}


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
                    "p": num(p),
                    "q": num(s),
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
                    "p": num(p),
                    "q": num(s),
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
                        "b": num(bp),
                        "B": num(bs),
                        "a": num(ap),
                        "A": num(as_),
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
        "o": num(c.open),
        "c": num(c.close),
        "h": num(c.high),
        "l": num(c.low),
        "v": num(c.volume),
        "n": c.trades,
        "x": c.closed,
        "q": num(c.quote_volume),
        "V": num(c.taker_buy_volume),
        "Q": num(c.taker_buy_quote),
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws", raw_stream)
    app.router.add_get("/ws/{streams:.+}", raw_stream)
    app.router.add_get("/stream", combined_stream)
