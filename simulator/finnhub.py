"""Finnhub as served by the simulator (providers.md §3).

Stream: `/?token=<token>` (HTTP 401 on the upgrade for a bad token; with the
connection-limit fault a second connection for the same token gets HTTP 429).
Client messages `{"type":"subscribe","symbol":"AAPL"}` / `unsubscribe`, one
symbol each, no acknowledgement; crypto as `BINANCE:BTCUSDT`. Server frames:
`{"data":[{"p","s","t" (ms),"v","c"}],"type":"trade"}` batches mixing symbols
(`c` only for stocks), `{"type":"ping"}` every `finnhub_ping_interval` s,
`{"type":"error","msg":...}`. With a symbol cap (`faults.symbol_caps
["finnhub"]`, per connection; the free plan's is 50, providers.md 6) each
subscribe beyond it answers `{"type":"error","msg":"Subscribing to too many
symbols"}` and is not subscribed; earlier symbols keep streaming.

REST under `/api/v1`: `quote`, `search`, `stock/candle`; token as `token=`
query or `X-Finnhub-Token` header; errors `{"error": "..."}`.
"""

from __future__ import annotations

from functools import lru_cache

import orjson
from aiohttp import web

from simulator import candles, prices
from simulator.session import Session, TickContext
from simulator.wire import SIM, json_response

_RESOLUTIONS = {
    "1": ("min", 1),
    "5": ("min", 5),
    "15": ("min", 15),
    "30": ("min", 30),
    "60": ("hour", 1),
    "D": ("day", 1),
    "W": ("week", 1),
    "M": ("month", 1),
}


@lru_cache(maxsize=1)
def finnhub_symbols() -> dict[str, str]:
    """Finnhub symbol -> canonical symbol."""
    out = {}
    for symbol in prices.known_symbols():
        if symbol == prices.TEST_SYMBOL:
            continue
        row = prices.universe_row(symbol)
        out[row["provider_symbols"].get("finnhub") or symbol] = symbol
    return out


class FinnhubSession(Session):
    provider = "finnhub"

    def __init__(self, sim, request, ws, token: str) -> None:
        super().__init__(sim, request, ws)
        self.token = token
        self.subs: dict[str, str] = {}  # finnhub symbol -> canonical ("" if unknown)
        self.last_ping = self.opened_at

    def error(self, message: str) -> None:
        self.send_control(orjson.dumps({"type": "error", "msg": message}))

    async def on_message(self, msg) -> None:
        try:
            data = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            self.error("Invalid message")
            return
        if not isinstance(data, dict) or not isinstance(data.get("symbol"), str):
            self.error("Invalid message")
            return
        symbol = data["symbol"]
        kind = data.get("type")
        if kind == "subscribe":
            cap = self.sim.faults.symbol_cap("finnhub")
            if symbol not in self.subs and cap is not None and len(self.subs) >= cap:
                self.error("Subscribing to too many symbols")
                return
            self.subs[symbol] = finnhub_symbols().get(symbol, "")
        elif kind == "unsubscribe":
            self.subs.pop(symbol, None)
        else:
            self.error("Invalid message")

    def on_thaw(self, frozen_for: float) -> None:
        super().on_thaw(frozen_for)
        self.last_ping += frozen_for

    def on_tick(self, loop_time: float) -> None:
        if loop_time - self.last_ping >= self.sim.finnhub_ping_interval:
            self.last_ping = loop_time
            self.send_control(b'{"type":"ping"}')

    def pump(self, ctx: TickContext) -> None:
        items: list[bytes] = []
        for finnhub_symbol, symbol in self.subs.items():
            if not symbol:
                continue
            win = ctx.window(symbol)
            if win is None or not len(win.trade_ts):
                continue
            items.extend(
                ctx.memo(
                    ("finnhub", symbol), lambda w=win, s=finnhub_symbol: _trades(w, s)
                )
            )
        step = self.sim.max_batch
        for i in range(0, len(items), step):
            self.send_data(
                b'{"data":[' + b",".join(items[i : i + step]) + b'],"type":"trade"}'
            )

    def on_closed(self) -> None:
        counts = self.sim.finnhub_tokens
        counts[self.token] = max(counts.get(self.token, 1) - 1, 0)


def _trades(win, finnhub_symbol: str) -> list[bytes]:
    crypto = win.spec.always_open
    out = []
    for t, p, s in zip(
        win.trade_ts.tolist(),
        win.trade_price.tolist(),
        win.trade_size.tolist(),
        strict=True,
    ):
        item = {
            "p": p,
            "s": finnhub_symbol,
            "t": t // 1_000_000,
            "v": s if crypto else int(s),
        }
        if not crypto:
            item = {"c": ["1"], **item}
        out.append(orjson.dumps(item))
    return out


async def stream(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    if not ws.can_prepare(request).ok:
        return web.Response(text="Finnhub WebSocket endpoint (simulator)\n")
    token = request.query.get("token", "")
    faults = sim.faults
    if faults.get("reject_auth", "finnhub") or token != sim.finnhub_token:
        return web.Response(status=401, text="Unauthorized\n")
    counts = sim.finnhub_tokens
    if faults.get("connection_limit", "finnhub") and counts.get(token, 0) >= 1:
        return web.Response(status=429, text="Too many connections for this token\n")
    counts[token] = counts.get(token, 0) + 1
    try:
        await ws.prepare(request)
    except Exception:
        counts[token] -= 1
        raise
    return await FinnhubSession(sim, request, ws, token).run()


# --- REST ----------------------------------------------------------------------


def _token_error(request: web.Request) -> web.Response | None:
    sim = request.app[SIM]
    token = request.query.get("token") or request.headers.get("X-Finnhub-Token")
    if not token:
        return json_response({"error": "Please use an API key."}, status=401)
    if sim.faults.get("reject_auth", "finnhub") or token != sim.finnhub_token:
        return json_response({"error": "Invalid API key"}, status=401)
    return None


async def quote(request: web.Request) -> web.Response:
    if (error := _token_error(request)) is not None:
        return error
    sim = request.app[SIM]
    raw = request.query.get("symbol", "")
    if not raw:
        return json_response({"error": "Symbol is required."}, status=422)
    symbol = finnhub_symbols().get(raw)
    summary = candles.day_summary(sim.tape, symbol, sim.now_ns()) if symbol else None
    if summary is None:
        return json_response(
            {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}
        )
    spec = prices.symbol_spec(symbol)
    change = round(summary["c"] - summary["pc"], spec.decimals)
    percent = round(change / summary["pc"] * 100, 4) if summary["pc"] else None
    return json_response(
        {
            "c": summary["c"],
            "d": change,
            "dp": percent,
            "h": summary["h"],
            "l": summary["l"],
            "o": summary["o"],
            "pc": summary["pc"],
            "t": summary["t"],
        }
    )


_TYPES = {"equity": "Common Stock", "etf": "ETP", "crypto": "Crypto"}


async def search(request: web.Request) -> web.Response:
    if (error := _token_error(request)) is not None:
        return error
    query = request.query.get("q", "").strip().lower()
    if not query:
        return json_response({"count": 0, "result": []})
    result = []
    for finnhub_symbol, symbol in finnhub_symbols().items():
        row = prices.universe_row(symbol)
        if query in finnhub_symbol.lower() or query in row["name"].lower():
            exact = finnhub_symbol.lower() == query or symbol.lower() == query
            result.append(
                (
                    0 if exact else 1,
                    {
                        "description": row["name"].upper(),
                        "displaySymbol": symbol,
                        "symbol": finnhub_symbol,
                        "type": _TYPES.get(row["asset_class"], ""),
                    },
                )
            )
    result.sort(key=lambda item: (item[0], item[1]["symbol"]))
    return json_response({"count": len(result), "result": [item for _, item in result]})


async def stock_candle(request: web.Request) -> web.Response:
    if (error := _token_error(request)) is not None:
        return error
    sim = request.app[SIM]
    q = request.query
    resolution = q.get("resolution", "")
    if resolution not in _RESOLUTIONS:
        return json_response({"error": "Wrong resolution."}, status=422)
    try:
        start, end = int(q["from"]), int(q["to"])
    except (KeyError, ValueError):
        return json_response({"error": "Wrong from/to."}, status=422)
    symbol = finnhub_symbols().get(q.get("symbol", ""))
    if symbol is None or end < start:
        return json_response({"s": "no_data"})
    unit, amount = _RESOLUTIONS[resolution]
    now_s = sim.now_ns() // 1_000_000_000
    bars = candles.bars_between(
        symbol,
        start,
        end,
        cap=now_s // 60 * 60,
        seed=sim.seed,
        hours=sim.tape.hours_for(symbol),
        unit=unit,
        amount=amount,
    )
    if not len(bars):
        return json_response({"s": "no_data"})
    return json_response(
        {
            "c": bars.c.tolist(),
            "h": bars.h.tolist(),
            "l": bars.l.tolist(),
            "o": bars.o.tolist(),
            "s": "ok",
            "t": bars.ts.tolist(),
            "v": bars.volume.tolist(),
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/quote", quote)
    app.router.add_get("/api/v1/search", search)
    app.router.add_get("/api/v1/stock/candle", stock_candle)
    app.router.add_get("/", stream)
