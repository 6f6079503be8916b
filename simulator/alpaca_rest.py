"""Alpaca Market Data v2 REST as served by the simulator (providers.md §2).

`/v2/stocks/bars`, `/v2/stocks/{symbol}/bars`, latest trades/quotes/bars
(multi and single), `/v1beta3/crypto/us/bars` and crypto latest. `limit`
counts across symbols, pages are symbol-major, `next_page_token` is opaque
base64 of `SYMBOL|TIMEFRAME|epoch`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from datetime import date, datetime, time

from aiohttp import web

from marketdata.calendar import NEW_YORK
from simulator import candles, prices
from simulator.alpaca_common import DELAY_NS, feed_symbols, latest
from simulator.tape import NS, rfc3339_s_many
from simulator.wire import SIM, json_response


class RestError(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code if code is not None else status * 100000


def error_response(exc: RestError) -> web.Response:
    return json_response({"code": exc.code, "message": exc.message}, status=exc.status)


def authorized(request: web.Request, *, required: bool) -> bool:
    sim = request.app[SIM]
    key = request.headers.get("APCA-API-KEY-ID")
    secret = request.headers.get("APCA-API-SECRET-KEY")
    auth = request.headers.get("Authorization", "")
    if key is None and secret is None and auth.startswith("Basic "):
        try:
            key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
    if key is None and secret is None:
        return not required
    if sim.faults.get("reject_auth", "alpaca"):
        return False
    return key == sim.key_id and secret == sim.secret


FORBIDDEN = {"message": "forbidden."}
_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {
    "Min": "min", "T": "min", "Hour": "hour", "H": "hour", "Day": "day", "D": "day",
    "Week": "week", "W": "week", "Month": "month", "M": "month",
}  # fmt: skip
FEEDS = {"iex", "sip", "delayed_sip", "otc", "boats", "overnight"}


def parse_timeframe(value: str | None) -> tuple[str, int, str]:
    if not value:
        raise RestError(422, "timeframe is required", 42210000)
    match = _TIMEFRAME.match(value)
    if not match:
        raise RestError(422, f"invalid timeframe: {value}", 42210000)
    amount, unit = int(match.group(1)), _UNITS[match.group(2)]
    valid = {
        "min": range(1, 60),
        "hour": range(1, 24),
        "day": (1,),
        "week": (1,),
        "month": (1, 2, 3, 4, 6, 12),
    }[unit]
    if amount not in valid:
        raise RestError(422, f"invalid timeframe: {value}", 42210000)
    code = {
        "min": "Min",
        "hour": "Hour",
        "day": "Day",
        "week": "Week",
        "month": "Month",
    }[unit]
    return unit, amount, f"{amount}{code}"


def parse_time(value: str, name: str) -> int:
    """RFC-3339 (any fraction, Z or offset) or YYYY-MM-DD (midnight New York
    for stocks, as Alpaca interprets dates) -> epoch seconds."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return int(datetime.combine(day, time(0), NEW_YORK).timestamp())
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
        if match and match.group(2):
            text = match.group(1) + match.group(2)[:7] + match.group(3)
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            raise ValueError("missing timezone")
        return int(parsed.timestamp())
    except ValueError:
        raise RestError(400, f"invalid {name}: {value}", 40010001) from None


class BarQuery:
    def __init__(
        self, request: web.Request, symbols: list[str], *, crypto: bool
    ) -> None:
        sim = request.app[SIM]
        q = request.query
        self.crypto = crypto
        self.symbols = sorted(dict.fromkeys(symbols))
        self.unit, self.amount, self.tf_code = parse_timeframe(q.get("timeframe"))
        feed = q.get("feed", "iex")
        if not crypto and feed not in FEEDS:
            raise RestError(400, f"invalid feed: {feed}", 40010001)
        now_s = sim.now_ns() // NS
        if feed == "delayed_sip":
            now_s -= 15 * 60
        if "start" in q:
            self.start = parse_time(q["start"], "start")
        else:
            today = datetime.fromtimestamp(now_s, tz=NEW_YORK).date()
            self.start = int(datetime.combine(today, time(0), NEW_YORK).timestamp())
        self.end = parse_time(q["end"], "end") if "end" in q else now_s
        if self.end < self.start:
            raise RestError(422, "end should not be before start", 42210000)
        raw_limit = q.get("limit", "1000")
        try:
            self.limit = int(raw_limit)
        except ValueError:
            raise RestError(400, f"invalid limit: {raw_limit}", 40010001) from None
        if not 1 <= self.limit <= 10000:
            raise RestError(422, "invalid limit: must be between 1 and 10000", 42210000)
        self.sort = q.get("sort", "asc")
        if self.sort not in ("asc", "desc"):
            raise RestError(422, f"invalid sort: {self.sort}", 42210000)
        adjustment = q.get("adjustment", "raw")
        if not set(adjustment.split(",")) <= {
            "raw",
            "split",
            "dividend",
            "spin-off",
            "all",
        }:
            raise RestError(422, f"invalid adjustment: {adjustment}", 42210000)
        # Only minutes that are over exist (the running one is not served).
        self.cap = now_s // 60 * 60  # minutes that are over; stable within a minute
        self.hi = min(self.end + 1, self.cap)
        self.seed = sim.seed
        self.hours = sim.hours
        self.token = None
        if q.get("page_token"):
            self.token = self._decode_token(q["page_token"])

    def _decode_token(self, token: str) -> tuple[str, int]:
        try:
            symbol, tf_code, ts = (
                base64.b64decode(token, validate=True).decode().split("|")
            )
            ts_value = int(ts)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise RestError(400, "invalid page token", 40010001) from None
        if symbol not in self.symbols or tf_code != self.tf_code:
            raise RestError(400, "invalid page token", 40010001)
        return symbol, ts_value

    def encode_token(self, symbol: str, ts: int) -> str:
        return base64.b64encode(f"{symbol}|{self.tf_code}|{ts}".encode()).decode()

    def fetch(self, symbol: str, cursor: int | None, need: int) -> prices.Bars:
        """Up to `need` bars of `symbol` from `cursor` (a bar start, inclusive)
        on, in the requested order."""
        desc = self.sort == "desc"
        start, end = self.start, self.end
        if cursor is not None:
            if desc:
                end = min(end, cursor)
            else:
                start = max(start, cursor)
        return candles.bars_between(
            symbol,
            start,
            end,
            cap=self.cap,
            seed=self.seed,
            hours="always" if symbol == prices.TEST_SYMBOL else self.hours,
            unit=self.unit,
            amount=self.amount,
            limit=need,
            descending=desc,
        )

    def page(self) -> tuple[dict[str, list[dict]], str | None]:
        out: dict[str, list[dict]] = {}
        remaining = self.limit
        index, cursor = 0, None
        if self.token is not None:
            index, cursor = self.symbols.index(self.token[0]), self.token[1]
        token = None
        while index < len(self.symbols):
            symbol = self.symbols[index]
            rows = self.fetch(symbol, cursor, remaining + 1)
            take = rows.slice(0, remaining)
            if len(take):
                out[symbol] = _bars_payload(take, crypto=self.crypto)
            remaining -= len(take)
            if len(rows) > len(take):
                token = self.encode_token(symbol, int(rows.ts[len(take)]))
                break
            index, cursor = index + 1, None
            if remaining == 0:
                while index < len(self.symbols):
                    if len(self.fetch(self.symbols[index], None, 1)):
                        token = self.encode_token(
                            self.symbols[index], self._first_cursor()
                        )
                        break
                    index += 1
                break
        return out, token

    def _first_cursor(self) -> int:
        return self.hi - 1 if self.sort == "desc" else self.start


def symbols_param(request: web.Request) -> list[str]:
    raw = request.query.get("symbols", "")
    symbols = [s.strip() for s in raw.split(",") if s.strip()]
    if not symbols:
        raise RestError(400, "symbols is required", 40010001)
    return symbols


async def _in_thread(func, *args):
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def stock_bars(request: web.Request) -> web.Response:
    if not authorized(request, required=True):
        return json_response(FORBIDDEN, status=403)
    try:
        single = request.match_info.get("symbol")
        symbols = [single] if single else symbols_param(request)
        query = BarQuery(request, symbols, crypto=False)
        bars, token = await _in_thread(query.page)
    except RestError as exc:
        return error_response(exc)
    if single:
        return json_response(
            {"bars": bars.get(single, []), "symbol": single, "next_page_token": token}
        )
    return json_response({"bars": bars, "next_page_token": token})


async def crypto_bars(request: web.Request) -> web.Response:
    if not authorized(request, required=False):
        return json_response(FORBIDDEN, status=403)
    try:
        query = BarQuery(request, symbols_param(request), crypto=True)
        bars, token = await _in_thread(query.page)
    except RestError as exc:
        return error_response(exc)
    return json_response({"bars": bars, "next_page_token": token})


_SINGULAR = {"trades": "trade", "quotes": "quote", "bars": "bar"}


def _latest_now(request: web.Request) -> int:
    now = request.app[SIM].now_ns()
    if request.query.get("feed") == "delayed_sip":
        now -= DELAY_NS
    return now


async def stock_latest(request: web.Request) -> web.Response:
    if not authorized(request, required=True):
        return json_response(FORBIDDEN, status=403)
    sim = request.app[SIM]
    what = request.match_info["what"]
    single = request.match_info.get("symbol")
    now = _latest_now(request)
    mapping = feed_symbols()["stock"] | feed_symbols()["test"]
    if single:
        value = latest(sim, mapping.get(single, ""), what, crypto=False, now_ns=now)
        if value is None:
            return json_response(
                {
                    "code": 40410000,
                    "message": f"no {_SINGULAR[what]} found for {single}",
                },
                status=404,
            )
        return json_response({"symbol": single, _SINGULAR[what]: value})
    try:
        symbols = symbols_param(request)
    except RestError as exc:
        return error_response(exc)
    out = {}
    for symbol in symbols:
        value = latest(sim, mapping.get(symbol, ""), what, crypto=False, now_ns=now)
        if value is not None:
            out[symbol] = value
    return json_response({what: out})


async def crypto_latest(request: web.Request) -> web.Response:
    if not authorized(request, required=False):
        return json_response(FORBIDDEN, status=403)
    sim = request.app[SIM]
    what = request.match_info["what"]
    try:
        symbols = symbols_param(request)
    except RestError as exc:
        return error_response(exc)
    mapping = feed_symbols()["crypto"]
    out = {}
    for symbol in symbols:
        value = latest(
            sim, mapping.get(symbol, ""), what, crypto=True, now_ns=sim.now_ns()
        )
        if value is not None:
            out[symbol] = value
    return json_response({what: out})


def _bars_payload(bars: prices.Bars, *, crypto: bool) -> list[dict]:
    ts = rfc3339_s_many(bars.ts)
    o, h, l, c = bars.o.tolist(), bars.h.tolist(), bars.l.tolist(), bars.c.tolist()  # noqa: E741
    v = bars.volume.tolist()
    if not crypto:
        v = [int(x) for x in v]
    n = bars.n.tolist()
    vw = bars.vwap.tolist()
    return [
        {
            "t": ts[i],
            "o": o[i],
            "h": h[i],
            "l": l[i],
            "c": c[i],
            "v": v[i],
            "n": n[i],
            "vw": vw[i],
        }
        for i in range(len(ts))
    ]


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/stocks/bars", stock_bars)
    r.add_get("/v2/stocks/{what:trades|quotes|bars}/latest", stock_latest)
    r.add_get("/v2/stocks/{symbol}/bars", stock_bars)
    r.add_get("/v2/stocks/{symbol}/{what:trades|quotes|bars}/latest", stock_latest)
    r.add_get("/v1beta3/crypto/us/bars", crypto_bars)
    r.add_get("/v1beta3/crypto/us/latest/{what:trades|quotes|bars}", crypto_latest)
