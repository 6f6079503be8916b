"""Alpaca Market Data v2 as served by the simulator (providers.md §1, §2).

Stream: `/v2/{iex,sip,delayed_sip,test}` and `/v1beta3/crypto/us`. JSON text
frames by default; msgpack binary frames (timestamps as msgpack Timestamp
extensions) when the upgrade carries `Content-Type: application/msgpack`, as
alpaca-py sends; client messages may then be msgpack too. Session: connected
-> auth (message or APCA-* upgrade headers, within `auth_timeout`) ->
authenticated -> subscribe/unsubscribe answered with the full subscription
set. Errors 400/401/402/403/404/405/406/407/410 as Alpaca sends them, alone
in a 1-element array; data batched in arrays. With a symbol cap
(`faults.symbol_caps["alpaca"]`, per connection, distinct symbols over trades
+ quotes) a subscribe that would exceed it gets 405 "symbol limit exceeded"
and changes nothing. About one minute bar in five is
re-sent on `updatedBars` 30 s after it closed, with identical values
(exercises consumers' upsert path without breaking history == stream).

REST: `/v2/stocks/bars`, `/v2/stocks/{symbol}/bars`, latest trades/quotes/bars
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
from functools import lru_cache

import msgpack
import numpy as np
import orjson
from aiohttp import WSMsgType, web

from marketdata.calendar import NEW_YORK
from simulator import candles, prices
from simulator.server import (
    NS,
    SIM,
    Session,
    TickContext,
    json_frame,
    json_response,
    msgpack_frame,
)
from simulator.tape import (
    _second_text,
    rfc3339_ns,
    rfc3339_s,
    rfc3339_s_many,
)

STOCK_FEEDS = ("iex", "sip", "delayed_sip", "test")
STOCK_CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)
CRYPTO_CHANNELS = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")
_IMPLICIT = ("corrections", "cancelErrors")
_DELAY_NS = 15 * 60 * NS
_SIP_EXCHANGES = ("V", "Q", "N", "P", "K", "Z", "D", "J", "Y")
_TAPES = {"NASDAQ": "C", "NYSE": "A"}


@lru_cache(maxsize=1)
def feed_symbols() -> dict[str, dict[str, str]]:
    """Alpaca symbol -> canonical symbol, per feed kind ("stock", "crypto", "test")."""
    stock: dict[str, str] = {}
    crypto: dict[str, str] = {}
    for symbol in prices.known_symbols():
        row = prices.universe_row(symbol)
        if symbol == prices.TEST_SYMBOL:
            continue
        alpaca = row["provider_symbols"].get("alpaca") or symbol
        if row["asset_class"] == "crypto":
            crypto[alpaca] = symbol
        else:
            stock[alpaca] = symbol
    return {
        "stock": stock,
        "crypto": crypto,
        "test": {prices.TEST_SYMBOL: prices.TEST_SYMBOL},
    }


def _tape_of(symbol: str) -> str:
    row = prices.universe_row(symbol) or {}
    return _TAPES.get(row.get("exchange", ""), "B")


def _ts_value(ts_ns: int, binary: bool):
    if binary:
        return msgpack.Timestamp.from_unix_nano(ts_ns)
    return rfc3339_ns(ts_ns)


def _packer(binary: bool):
    return msgpack.packb if binary else orjson.dumps


# --- WebSocket stream ------------------------------------------------------------


class AlpacaSession(Session):
    provider = "alpaca"

    def __init__(self, sim, request, ws, feed: str) -> None:
        super().__init__(sim, request, ws)
        self.feed = feed
        self.crypto = feed == "crypto"
        self.kind = "crypto" if self.crypto else ("test" if feed == "test" else "stock")
        self.binary = "msgpack" in request.headers.get("Content-Type", "").lower()
        self.channels = CRYPTO_CHANNELS if self.crypto else STOCK_CHANNELS
        self.subs: dict[str, list[str]] = {
            c: [] for c in self.channels if c not in _IMPLICIT
        }
        self.authenticated = False
        self.key: str | None = None  # "<key>|stocks" or "<key>|crypto"
        self.deadline = self.opened_at + sim.auth_timeout

    # --- control frames -----------------------------------------------------
    def control(self, message: dict) -> None:
        self.send_control(_packer(self.binary)([message]))

    def error(self, code: int, message: str) -> None:
        self.control({"T": "error", "code": code, "msg": message})

    def subscription_frame(self) -> dict:
        frame: dict = {"T": "subscription"}
        for channel in self.channels:
            if channel in _IMPLICIT:
                frame[channel] = list(self.subs["trades"])
            else:
                frame[channel] = list(self.subs[channel])
        return frame

    async def on_open(self) -> None:
        self.control({"T": "success", "msg": "connected"})
        headers = self.request.headers
        if "APCA-API-KEY-ID" in headers or "APCA-API-SECRET-KEY" in headers:
            self.authenticate(
                headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY")
            )

    def authenticate(self, key: object, secret: object) -> None:
        sim = self.sim
        if self.authenticated:
            self.error(403, "already authenticated")
            return
        faults = sim.faults
        wrong = key != sim.key_id or secret != sim.secret
        if wrong or faults.get("reject_auth", "alpaca"):
            self.error(402, "auth failed")
            self.close_after_queue(1008, "auth failed")
            return
        # One session per key and stream (stocks and crypto count separately).
        slot = f"{key}|{'crypto' if self.crypto else 'stocks'}"
        limited = faults.get("connection_limit", "alpaca")
        if limited and sim.alpaca_authenticated.get(slot, 0) >= 1:
            self.error(406, "connection limit exceeded")
            self.close_after_queue(1008, "connection limit exceeded")
            return
        self.authenticated = True
        self.key = slot
        sim.alpaca_authenticated[slot] = sim.alpaca_authenticated.get(slot, 0) + 1
        self.control({"T": "success", "msg": "authenticated"})

    def on_closed(self) -> None:
        if self.authenticated and self.key is not None:
            left = self.sim.alpaca_authenticated.get(self.key, 1) - 1
            self.sim.alpaca_authenticated[self.key] = max(left, 0)
            self.authenticated = False

    def on_thaw(self, frozen_for: float) -> None:
        super().on_thaw(frozen_for)
        self.deadline += frozen_for

    def on_tick(self, loop_time: float) -> None:
        if not self.authenticated and not self.closing and loop_time >= self.deadline:
            self.error(404, "auth timeout")
            self.close_after_queue(1008, "auth timeout")

    def on_slow_client(self) -> None:
        self.queue.clear()
        self.error(407, "slow client")
        self.close_after_queue(1008, "slow client")

    async def on_message(self, msg) -> None:
        try:
            if msg.type == WSMsgType.BINARY:
                data = msgpack.unpackb(msg.data)
            else:
                data = orjson.loads(msg.data)
        except Exception:
            self.error(400, "invalid syntax")
            return
        if not isinstance(data, dict) or not isinstance(data.get("action"), str):
            self.error(400, "invalid syntax")
            return
        action = data["action"]
        if action == "auth":
            self.authenticate(data.get("key"), data.get("secret"))
        elif action in ("subscribe", "unsubscribe"):
            if not self.authenticated:
                self.error(401, "not authenticated")
                return
            self.change_subscription(action, data)
        else:
            self.error(400, "invalid syntax")

    def change_subscription(self, action: str, data: dict) -> None:
        changes: dict[str, list[str]] = {}
        for channel, symbols in data.items():
            if channel == "action":
                continue
            if not isinstance(symbols, list) or not all(
                isinstance(s, str) for s in symbols
            ):
                self.error(400, "invalid syntax")
                return
            if channel not in self.subs:
                if symbols:
                    self.error(410, "invalid subscribe action for this feed")
                    return
                continue
            changes[channel] = symbols
        if not changes and action == "subscribe":
            self.error(400, "invalid syntax")
            return
        merged: dict[str, list[str]] = {}
        for channel, symbols in changes.items():
            current = self.subs[channel]
            if action == "subscribe":
                fresh = [s for s in dict.fromkeys(symbols) if s not in current]
                merged[channel] = current + fresh
            else:
                merged[channel] = [s for s in current if s not in set(symbols)]
        if action == "subscribe" and self._over_cap({**self.subs, **merged}):
            # The plan's cap: refused as a whole, subscriptions as they were.
            self.error(405, "symbol limit exceeded")
            return
        self.subs.update(merged)
        self.control(self.subscription_frame())

    def _over_cap(self, subs: dict[str, list[str]]) -> bool:
        """Whether `subs` exceeds the symbol cap. The free plan's cap counts
        distinct symbols over trades and quotes; bars (and the other
        channels) are unlimited (providers.md 1.2). `*` is every symbol."""
        cap = self.sim.faults.symbol_cap("alpaca")
        if cap is None:
            return False
        counted = set(subs["trades"]) | set(subs["quotes"])
        return "*" in counted or len(counted) > cap

    # --- data ---------------------------------------------------------------
    def _resolve(self, symbols: list[str]) -> list[tuple[str, str]]:
        mapping = feed_symbols()[self.kind]
        if "*" in symbols:
            return list(mapping.items())
        return [(s, mapping[s]) for s in symbols if s in mapping]

    def pump(self, ctx: TickContext) -> None:
        if not self.authenticated:
            return
        shift = _DELAY_NS if self.feed == "delayed_sip" else 0
        wanted: dict[tuple[str, str], list[str]] = {}
        for channel, kind in (
            ("trades", "t"),
            ("quotes", "q"),
            ("bars", "b"),
            ("updatedBars", "u"),
            ("dailyBars", "d"),
        ):
            for pair in self._resolve(self.subs[channel]):
                wanted.setdefault(pair, []).append(kind)
        if not wanted:
            return
        variant = (self.binary, self.feed == "iex", self.crypto)
        fragments: list[bytes] = []
        for (alpaca_symbol, symbol), kinds in wanted.items():
            win = ctx.window(symbol, shift)
            if win is None:
                continue
            for kind in kinds:
                if win.empty and kind != "u":
                    continue
                key = ("alpaca", kind, symbol, shift, variant)
                fragments.extend(
                    ctx.memo(
                        key,
                        lambda k=kind, w=win, a=alpaca_symbol: _encode(
                            k, w, a, variant, ctx
                        ),
                    )
                )
        if not fragments:
            return
        build = msgpack_frame if self.binary else json_frame
        step = self.sim.max_batch
        for i in range(0, len(fragments), step):
            self.send_data(build(fragments[i : i + step]))


def _encode(
    kind: str, win, alpaca_symbol: str, variant: tuple, ctx: TickContext
) -> list[bytes]:
    binary, iex, crypto = variant
    if not binary and kind in ("t", "q"):
        return _encode_json_fast(kind, win, alpaca_symbol, iex=iex, crypto=crypto)
    pack = _packer(binary)
    out: list[bytes] = []
    if kind == "t" and len(win.trade_ts):
        ts = win.trade_ts.tolist()
        price = win.trade_price.tolist()
        size = win.trade_size.tolist()
        buy = win.trade_buy.tolist()
        ids = win.trade_id.tolist()
        if crypto:
            for t, p, s, b, i in zip(ts, price, size, buy, ids, strict=True):
                out.append(
                    pack(
                        {
                            "T": "t",
                            "S": alpaca_symbol,
                            "p": p,
                            "s": s,
                            "t": _ts_value(t, binary),
                            "i": i,
                            "tks": "B" if b else "S",
                        }
                    )
                )
        else:
            tape = _tape_of(win.symbol)
            for t, p, s, i in zip(ts, price, size, ids, strict=True):
                exchange = "V" if iex else _SIP_EXCHANGES[i % len(_SIP_EXCHANGES)]
                out.append(
                    pack(
                        {
                            "T": "t",
                            "S": alpaca_symbol,
                            "i": i,
                            "x": exchange,
                            "p": p,
                            "s": int(s),
                            "c": ["@"],
                            "z": tape,
                            "t": _ts_value(t, binary),
                        }
                    )
                )
    elif kind == "q" and len(win.quote_ts):
        cols = zip(
            win.quote_ts.tolist(),
            win.bid.tolist(),
            win.bid_size.tolist(),
            win.ask.tolist(),
            win.ask_size.tolist(),
            strict=True,
        )
        if crypto:
            for t, bp, bs, ap, as_ in cols:
                out.append(
                    pack(
                        {
                            "T": "q",
                            "S": alpaca_symbol,
                            "bp": bp,
                            "bs": bs,
                            "ap": ap,
                            "as": as_,
                            "t": _ts_value(t, binary),
                        }
                    )
                )
        else:
            tape = _tape_of(win.symbol)
            for t, bp, bs, ap, as_ in cols:
                bx = "V" if iex else _SIP_EXCHANGES[t % 7]
                ax = "V" if iex else _SIP_EXCHANGES[(t >> 3) % 7]
                out.append(
                    pack(
                        {
                            "T": "q",
                            "S": alpaca_symbol,
                            "bx": bx,
                            "bp": bp,
                            "bs": int(bs),
                            "ax": ax,
                            "ap": ap,
                            "as": int(as_),
                            "c": ["R"],
                            "z": tape,
                            "t": _ts_value(t, binary),
                        }
                    )
                )
    elif kind in ("b", "d", "u"):
        if kind == "u":
            minutes = ctx.tape.updated_minutes(win.symbol, win.t0_ns, win.t1_ns)
        else:
            minutes = win.closed_minutes
        for minute_ts in minutes:
            if kind in ("b", "u"):
                bar = prices.minute_bar(win.symbol, minute_ts, seed=ctx.tape.seed)
            else:
                day_start = int(
                    prices.day_keys(np.array([minute_ts]), symbol=win.symbol)[0]
                )
                bar = prices.bars(
                    win.symbol,
                    day_start,
                    minute_ts + 60,
                    seed=ctx.tape.seed,
                    hours=ctx.tape.hours_for(win.symbol),
                    unit="day",
                )
            if not len(bar):
                continue
            body = bar_json(bar, -1, crypto=crypto)
            body["t"] = (
                msgpack.Timestamp(int(bar.ts[-1]), 0)
                if binary
                else rfc3339_s(int(bar.ts[-1]))
            )
            out.append(pack({"T": kind, "S": alpaca_symbol, **body}))
    return out


def _stamps(ts: list[int]) -> list[str]:
    """RFC-3339 nanosecond stamps (see `tape.rfc3339_ns`), inlined for speed."""
    out = []
    append = out.append
    for t in ts:
        seconds, frac = divmod(t, NS)
        if frac:
            append(f"{_second_text(seconds)}.{frac:09d}".rstrip("0") + "Z")
        else:
            append(_second_text(seconds) + "Z")
    return out


def _encode_json_fast(
    kind: str, win, alpaca_symbol: str, *, iex: bool, crypto: bool
) -> list[bytes]:
    """JSON fragments built from templates: the same bytes orjson would
    produce from the dicts in `_encode` (shortest float repr, no spaces), ~3x
    faster, which is what bounds the stream rate."""
    symbol = orjson.dumps(alpaca_symbol).decode()
    if kind == "t":
        if not len(win.trade_ts):
            return []
        stamps = _stamps(win.trade_ts.tolist())
        prices_ = win.trade_price.tolist()
        sizes = win.trade_size.tolist()
        ids = win.trade_id.tolist()
        if crypto:
            sides = win.trade_buy.tolist()
            return [
                f'{{"T":"t","S":{symbol},"p":{p!r},"s":{s!r},"t":"{t}","i":{i},'
                f'"tks":"{"B" if b else "S"}"}}'.encode()
                for t, p, s, b, i in zip(
                    stamps, prices_, sizes, sides, ids, strict=True
                )
            ]
        tape = _tape_of(win.symbol)
        n_ex = len(_SIP_EXCHANGES)
        return [
            f'{{"T":"t","S":{symbol},"i":{i},"x":"{"V" if iex else _SIP_EXCHANGES[i % n_ex]}",'
            f'"p":{p!r},"s":{int(s)},"c":["@"],"z":"{tape}","t":"{t}"}}'.encode()
            for t, p, s, i in zip(stamps, prices_, sizes, ids, strict=True)
        ]
    if not len(win.quote_ts):
        return []
    raw_ts = win.quote_ts.tolist()
    stamps = _stamps(raw_ts)
    cols = zip(
        stamps,
        raw_ts,
        win.bid.tolist(),
        win.bid_size.tolist(),
        win.ask.tolist(),
        win.ask_size.tolist(),
        strict=True,
    )
    if crypto:
        return [
            f'{{"T":"q","S":{symbol},"bp":{bp!r},"bs":{bs!r},"ap":{ap!r},"as":{as_!r},'
            f'"t":"{t}"}}'.encode()
            for t, _, bp, bs, ap, as_ in cols
        ]
    tape = _tape_of(win.symbol)
    return [
        f'{{"T":"q","S":{symbol},"bx":"{"V" if iex else _SIP_EXCHANGES[raw % 7]}",'
        f'"bp":{bp!r},"bs":{int(bs)},"ax":"{"V" if iex else _SIP_EXCHANGES[(raw >> 3) % 7]}",'
        f'"ap":{ap!r},"as":{int(as_)},"c":["R"],"z":"{tape}","t":"{t}"}}'.encode()
        for t, raw, bp, bs, ap, as_ in cols
    ]


def bar_json(bars: prices.Bars, i: int, *, crypto: bool) -> dict:
    volume = float(bars.volume[i])
    return {
        "t": rfc3339_s(int(bars.ts[i])),
        "o": float(bars.o[i]),
        "h": float(bars.h[i]),
        "l": float(bars.l[i]),
        "c": float(bars.c[i]),
        "v": volume if crypto else int(volume),
        "n": int(bars.n[i]),
        "vw": float(bars.vwap[i]),
    }


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


async def stream(request: web.Request) -> web.StreamResponse:
    feed = request.match_info.get("feed", "crypto")
    if feed not in STOCK_FEEDS and feed != "crypto":
        raise web.HTTPNotFound()
    ws = web.WebSocketResponse(max_msg_size=1 << 22)
    if not ws.can_prepare(request).ok:
        return json_response({"message": "websocket upgrade expected"}, status=400)
    await ws.prepare(request)
    session = AlpacaSession(request.app[SIM], request, ws, feed)
    return await session.run()


# --- REST ----------------------------------------------------------------------


class RestError(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code if code is not None else status * 100000


def _error_response(exc: RestError) -> web.Response:
    return json_response({"code": exc.code, "message": exc.message}, status=exc.status)


def _authorized(request: web.Request, *, required: bool) -> bool:
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


_FORBIDDEN = {"message": "forbidden."}
_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {
    "Min": "min", "T": "min", "Hour": "hour", "H": "hour", "Day": "day", "D": "day",
    "Week": "week", "W": "week", "Month": "month", "M": "month",
}  # fmt: skip
_FEEDS = {"iex", "sip", "delayed_sip", "otc", "boats", "overnight"}


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


def parse_time_ns(value: str) -> int:
    """RFC-3339 with 0-9 fractional digits -> epoch nanoseconds."""
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)$", value)
    if not match:
        raise ValueError(f"not an RFC-3339 time: {value!r}")
    zone = "+00:00" if match.group(3) in ("Z", "z") else match.group(3)
    seconds = int(datetime.fromisoformat(match.group(1) + zone).timestamp())
    fraction = (match.group(2) or "").ljust(9, "0")
    return seconds * NS + int(fraction)


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
        if not crypto and feed not in _FEEDS:
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


def _symbols_param(request: web.Request) -> list[str]:
    raw = request.query.get("symbols", "")
    symbols = [s.strip() for s in raw.split(",") if s.strip()]
    if not symbols:
        raise RestError(400, "symbols is required", 40010001)
    return symbols


async def _in_thread(func, *args):
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def stock_bars(request: web.Request) -> web.Response:
    if not _authorized(request, required=True):
        return json_response(_FORBIDDEN, status=403)
    try:
        single = request.match_info.get("symbol")
        symbols = [single] if single else _symbols_param(request)
        query = BarQuery(request, symbols, crypto=False)
        bars, token = await _in_thread(query.page)
    except RestError as exc:
        return _error_response(exc)
    if single:
        return json_response(
            {"bars": bars.get(single, []), "symbol": single, "next_page_token": token}
        )
    return json_response({"bars": bars, "next_page_token": token})


async def crypto_bars(request: web.Request) -> web.Response:
    if not _authorized(request, required=False):
        return json_response(_FORBIDDEN, status=403)
    try:
        query = BarQuery(request, _symbols_param(request), crypto=True)
        bars, token = await _in_thread(query.page)
    except RestError as exc:
        return _error_response(exc)
    return json_response({"bars": bars, "next_page_token": token})


def _latest(sim, symbol: str, what: str, *, crypto: bool, now_ns: int) -> dict | None:
    if prices.symbol_spec(symbol) is None:
        return None
    tape = sim.tape
    if what == "trades":
        trade = tape.last_trade(symbol, now_ns)
        if trade is None:
            return None
        ts, price, size, buy, trade_id = trade
        if crypto:
            return {
                "t": rfc3339_ns(ts),
                "p": price,
                "s": size,
                "i": trade_id,
                "tks": "B" if buy else "S",
            }
        return {
            "t": rfc3339_ns(ts),
            "x": "V",
            "p": price,
            "s": int(size),
            "c": ["@"],
            "i": trade_id,
            "z": _tape_of(symbol),
        }
    if what == "quotes":
        quote = tape.last_quote(symbol, now_ns)
        if quote is None:
            return None
        ts, bp, bs, ap, as_ = quote
        if crypto:
            return {"t": rfc3339_ns(ts), "bp": bp, "bs": bs, "ap": ap, "as": as_}
        return {
            "t": rfc3339_ns(ts),
            "ax": "V",
            "ap": ap,
            "as": int(as_),
            "bx": "V",
            "bp": bp,
            "bs": int(bs),
            "c": ["R"],
            "z": _tape_of(symbol),
        }
    now_s = now_ns // NS
    bars = prices.minute_bars(
        symbol,
        now_s - 14 * 86400,
        now_s // 60 * 60,
        seed=sim.seed,
        hours=tape.hours_for(symbol),
        limit=1,
        descending=True,
    )
    return bar_json(bars, 0, crypto=crypto) if len(bars) else None


_SINGULAR = {"trades": "trade", "quotes": "quote", "bars": "bar"}


def _latest_now(request: web.Request) -> int:
    now = request.app[SIM].now_ns()
    if request.query.get("feed") == "delayed_sip":
        now -= _DELAY_NS
    return now


async def stock_latest(request: web.Request) -> web.Response:
    if not _authorized(request, required=True):
        return json_response(_FORBIDDEN, status=403)
    sim = request.app[SIM]
    what = request.match_info["what"]
    single = request.match_info.get("symbol")
    now = _latest_now(request)
    mapping = feed_symbols()["stock"] | feed_symbols()["test"]
    if single:
        value = _latest(sim, mapping.get(single, ""), what, crypto=False, now_ns=now)
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
        symbols = _symbols_param(request)
    except RestError as exc:
        return _error_response(exc)
    out = {}
    for symbol in symbols:
        value = _latest(sim, mapping.get(symbol, ""), what, crypto=False, now_ns=now)
        if value is not None:
            out[symbol] = value
    return json_response({what: out})


async def crypto_latest(request: web.Request) -> web.Response:
    if not _authorized(request, required=False):
        return json_response(_FORBIDDEN, status=403)
    sim = request.app[SIM]
    what = request.match_info["what"]
    try:
        symbols = _symbols_param(request)
    except RestError as exc:
        return _error_response(exc)
    mapping = feed_symbols()["crypto"]
    out = {}
    for symbol in symbols:
        value = _latest(
            sim, mapping.get(symbol, ""), what, crypto=True, now_ns=sim.now_ns()
        )
        if value is not None:
            out[symbol] = value
    return json_response({what: out})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/{feed}", stream)
    r.add_get("/v1beta3/crypto/us", stream)
    r.add_get("/v2/stocks/bars", stock_bars)
    r.add_get("/v2/stocks/{what:trades|quotes|bars}/latest", stock_latest)
    r.add_get("/v2/stocks/{symbol}/bars", stock_bars)
    r.add_get("/v2/stocks/{symbol}/{what:trades|quotes|bars}/latest", stock_latest)
    r.add_get("/v1beta3/crypto/us/bars", crypto_bars)
    r.add_get("/v1beta3/crypto/us/latest/{what:trades|quotes|bars}", crypto_latest)
