"""Alpaca Market Data v2 streams as served by the simulator (providers.md §1).

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
"""

from __future__ import annotations

import msgpack
import orjson
from aiohttp import WSMsgType, web

from simulator.alpaca_common import DELAY_NS, feed_symbols
from simulator.alpaca_frames import encode, packer
from simulator.session import Session, TickContext
from simulator.wire import SIM, json_frame, json_response, msgpack_frame

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
        self.send_control(packer(self.binary)([message]))

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
        shift = DELAY_NS if self.feed == "delayed_sip" else 0
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
                        lambda k=kind, w=win, a=alpaca_symbol: encode(
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2/{feed}", stream)
    app.router.add_get("/v1beta3/crypto/us", stream)
