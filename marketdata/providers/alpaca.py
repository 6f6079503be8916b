"""Alpaca Market Data: stock stream v2 (iex/sip/delayed_sip/test), crypto
stream v1beta3, REST v2 bars and snapshots.

Wire facts: /work/shared/reference/providers.md §1-2. Frames are JSON arrays
of messages keyed by `T`; with `Content-Type: application/msgpack` on the
upgrade the server sends the same messages as msgpack binary frames with `t`
as a msgpack timestamp. Both are accepted by `parse_frame`.

Decisions:
- Corrections (`T:"c"`), cancels/errors (`T:"x"`), LULD bands (`l`),
  imbalances (`i`) and crypto order books (`o`) are ignored like any unknown
  type: the minute bars (and Alpaca's `updatedBars` re-sends, which fold late
  trades and corrections in) are what Tapeline stores; live trades only drive
  the ticker, where a correction a few seconds later is not worth a new event.
- Trading statuses become `Status` only for state changes (halt, resume,
  quotation resumption, volatility/LULD pause). Informational codes (price or
  range indications, imbalances, short-sale restriction) are dropped, because
  reporting them as "not halted" could flip a halted instrument back on.

Over 400 lines: one vendor's adapter (stream messages, REST history,
snapshots) behind one class, as every provider module is; the typed fast path
of the stream parser is already `alpaca_wire`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson

from marketdata.events import (
    BarEvent,
    Control,
    ControlType,
    Event,
    Quote,
    Status,
    Trade,
)
from marketdata.providers.alpaca_wire import NotTyped, feed_events, typed_events
from marketdata.providers.base import (
    AuthenticationError,
    Provider,
    ProviderError,
    UnknownSymbolError,
)
from marketdata.providers.http import HttpClient
from marketdata.providers.snapshots import (
    Snapshot,
    alpaca_snapshot,
    snapshots_batched,
)
from marketdata.providers.timeparse import (
    parse_rfc3339,
    price_to_decimal,
    to_decimal,
    to_rfc3339,
)

STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "statuses")
CRYPTO_CHANNELS = ("trades", "quotes", "bars", "updatedBars")
REST_TIMEFRAMES = {"1m": "1Min", "1d": "1Day"}
PAGE_LIMIT = 10_000

ERROR_CONTROL = {
    402: ControlType.AUTH_FAILED,  # auth failed
    409: ControlType.AUTH_FAILED,  # insufficient subscription (feed not in plan)
    411: ControlType.AUTH_FAILED,  # insufficient scope
    406: ControlType.CONNECTION_LIMIT,
    405: ControlType.SUBSCRIPTION_ERROR,  # symbol limit exceeded
    410: ControlType.SUBSCRIPTION_ERROR,  # channel not available on this feed
}
#: what a subscription error means (`Control.reason`); Alpaca has no
#: unknown-symbol error (an unknown symbol is acknowledged, never delivered)
ERROR_REASON = {405: Control.PLAN_LIMIT, 410: Control.INVALID_REQUEST}

# Status codes that change whether an instrument trades (A-RT tables).
# CTA (tapes A/B): 2 halt, 3 resume, F limit-up/limit-down (halted when the
# reason is M = LULD pause). UTP (tape C): H halt, Q quotation resumption
# (quotes back, trading still halted), T trading resumption, P volatility pause.
HALT_CODES = frozenset({"2", "H", "Q", "P"})
RESUME_CODES = frozenset({"3", "T"})
LULD_CODE = "F"
# A binary frame starting like this is JSON sent as bytes.
_JSON_START = (b"[", b"{", b" ", b"\n", b"\r", b"\t")


def is_crypto_symbol(provider_symbol: str) -> bool:
    return "/" in provider_symbol


def _ts(value: Any) -> datetime:
    if isinstance(value, str):
        return parse_rfc3339(value)
    if isinstance(value, datetime):  # msgpack timestamp extension
        if value.tzinfo is UTC:
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime()
    raise ValueError(f"unsupported timestamp {type(value).__name__}")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class AlpacaProvider(Provider):
    """Alpaca stock + crypto streams and REST history."""

    name = "alpaca"
    asset_classes = frozenset({"equity", "etf", "crypto"})
    plan_limited_classes = frozenset({"equity", "etf"})  # crypto: no symbol cap
    extended_hours = True  # bars and trades from 04:00 to 20:00 New York
    #: feeds whose stream is asked for `statuses`. Trading statuses come from
    #: the SIPs; whether the single-venue IEX feed serves them is unconfirmed,
    #: and a refused channel (error 410) fails the whole subscribe request,
    #: so they are only requested where they surely exist. None = every feed.
    status_feeds: frozenset[str] | None = frozenset({"sip", "delayed_sip"})
    #: Alpaca documents no symbol cap for snapshots; 100 keeps URLs short
    snapshot_batch = 100

    def __init__(
        self,
        *,
        symbols: Mapping[str, str] | None = None,
        rate_limiter: Callable[[], None] | None = None,
        key_id: str | None = None,
        secret: str | None = None,
        feed: str | None = None,
        stream_base_url: str | None = None,
        data_url: str | None = None,
        channels: Iterable[str] | None = None,
        use_msgpack: bool = False,
        page_limit: int = PAGE_LIMIT,
        max_retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        super().__init__(symbols=symbols, rate_limiter=rate_limiter)
        from django.conf import settings

        default_key, default_secret = self._default_credentials()
        self.key_id = default_key if key_id is None else key_id
        self.secret = default_secret if secret is None else secret
        self.feed = feed or settings.ALPACA_FEED
        self.stream_base_url = (stream_base_url or settings.ALPACA_STREAM_URL).rstrip(
            "/"
        )
        self.data_url = (data_url or settings.ALPACA_DATA_URL).rstrip("/")
        self.channels = tuple(channels) if channels is not None else None
        self.use_msgpack = use_msgpack
        self.page_limit = page_limit
        self.http = HttpClient(
            provider=self.name,
            base_url=self.data_url,
            headers={
                "APCA-API-KEY-ID": self.key_id,
                "APCA-API-SECRET-KEY": self.secret,
            },
            rate_limiter=self._before_request,
            classify=self._classify_error,
            max_retries=max_retries,
            backoff=backoff,
        )
        self._handlers: dict[str, Callable[[dict], Event | None]] = {
            "t": self._trade,
            "q": self._quote,
            "b": self._bar,
            "u": self._updated_bar,
            "d": self._daily_bar,
            "s": self._status,
            "success": self._success,
            "error": self._error,
            "subscription": self._subscription,
        }

    def _default_credentials(self) -> tuple[str, str]:
        from django.conf import settings

        return settings.ALPACA_API_KEY, settings.ALPACA_API_SECRET

    def __repr__(self) -> str:  # never show the secret
        return f"<{type(self).__name__} feed={self.feed} key={self.key_id[:4]}…>"

    # --- streaming -----------------------------------------------------------
    def stream_url(self, *, asset_class: str, symbols: Iterable[str] = ()) -> str:
        if asset_class == "crypto":
            return f"{self.stream_base_url}/v1beta3/crypto/us"
        return f"{self.stream_base_url}/v2/{self.feed}"

    def stream_headers(self) -> list[str]:
        return ["Content-Type: application/msgpack"] if self.use_msgpack else []

    def auth_messages(self) -> list[str]:
        message = {"action": "auth", "key": self.key_id, "secret": self.secret}
        return [orjson.dumps(message).decode()]

    def _action_messages(self, action: str, symbols: Iterable[str]) -> list[str]:
        stocks: list[str] = []
        crypto: list[str] = []
        for symbol in symbols:
            provider_symbol = self.provider_symbol(symbol)
            (crypto if is_crypto_symbol(provider_symbol) else stocks).append(
                provider_symbol
            )
        messages = []
        stock_channels = STOCK_CHANNELS
        if self.status_feeds is not None and self.feed not in self.status_feeds:
            stock_channels = tuple(c for c in STOCK_CHANNELS if c != "statuses")
        for group, channels in ((stocks, stock_channels), (crypto, CRYPTO_CHANNELS)):
            if not group:
                continue
            if self.channels is not None:
                channels = tuple(c for c in channels if c in self.channels)
            message: dict[str, Any] = {"action": action}
            for channel in channels:
                message[channel] = group
            messages.append(orjson.dumps(message).decode())
        return messages

    def subscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        return self._action_messages("subscribe", symbols)

    def unsubscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        return self._action_messages("unsubscribe", symbols)

    def _malformed(self, why: str) -> Control:
        return Control(ControlType.MALFORMED, self.name, message=why[:200])

    def _decode(self, frame: str | bytes) -> Any:
        if isinstance(frame, str):
            return orjson.loads(frame)
        data = bytes(frame)
        if data[:1] in _JSON_START:
            return orjson.loads(data)
        return msgpack.unpackb(data, timestamp=3, raw=False, strict_map_key=False)

    def parse_frame(
        self, frame: str | bytes, received_at: datetime | None = None
    ) -> list[Event]:
        if type(frame) is not str and frame[:1] not in _JSON_START:
            try:  # msgpack frames of market data: typed, no dicts
                return typed_events(
                    frame, provider=self.name, to_canonical=self.to_canonical
                )
            except NotTyped:
                pass  # anything else: the dict path decides
        return self.parse_frame_dicts(frame)

    def parse_feed(self, frame: str | bytes) -> list:
        if type(frame) is not str and frame[:1] not in _JSON_START:
            try:  # quotes stay wire values until the worker applies them
                return feed_events(
                    frame, provider=self.name, to_canonical=self.to_canonical
                )
            except NotTyped:
                pass
        return self.parse_frame_dicts(frame)

    def parse_frame_dicts(self, frame: str | bytes) -> list[Event]:
        """`parse_frame` through dicts: every frame the typed path does not
        take, and the reference the typed path must equal."""
        try:
            data = self._decode(frame)
        except Exception as exc:  # any decoder failure is a malformed frame
            return [self._malformed(f"undecodable frame: {type(exc).__name__}")]
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            return [self._malformed("frame is not an array of messages")]
        events: list[Event] = []
        handlers = self._handlers
        for message in data:
            if not isinstance(message, dict):
                events.append(self._malformed("message is not an object"))
                continue
            kind = message.get("T")
            if not isinstance(kind, str):
                events.append(self._malformed("message without a type"))
                continue
            handler = handlers.get(kind)
            if handler is None:
                continue  # unknown types are ignored by design
            try:
                event = handler(message)
            except Exception as exc:
                events.append(self._malformed(f"bad {kind!r} message: {exc}"))
                continue
            if event is not None:
                events.append(event)
        return events

    def _symbol(self, message: dict) -> str:
        symbol = message["S"]
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("missing symbol")
        return self.to_canonical.get(symbol, symbol)

    # The three builders below run once per market-data message: fields are
    # passed positionally (half the cost of keywords for a frozen slots
    # dataclass) and small helpers are inlined. Field order is that of
    # marketdata/events.py; evaluation order (hence the first error reported
    # for a bad message) is unchanged.
    def _trade(self, m: dict) -> Trade:
        trade_id = m.get("i")
        if isinstance(trade_id, float | bool):
            # orjson turns integers beyond 64 bits into floats: digits lost
            raise ValueError("trade id is not an integer")
        conditions = m.get("c")
        symbol = m["S"]
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("missing symbol")
        t = m["t"]
        exchange = m.get("x")
        return Trade(
            self.to_canonical.get(symbol, symbol),
            parse_rfc3339(t) if type(t) is str else _ts(t),
            price_to_decimal(m["p"]),
            to_decimal(m["s"]),
            self.name,
            None if trade_id is None else str(trade_id),
            exchange if isinstance(exchange, str) else "",
            tuple([c for c in conditions if isinstance(c, str)])
            if isinstance(conditions, list)
            else (),
        )

    def _quote(self, m: dict) -> Quote:
        symbol = m["S"]
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("missing symbol")
        t = m["t"]
        bid_exchange = m.get("bx")
        ask_exchange = m.get("ax")
        return Quote(
            self.to_canonical.get(symbol, symbol),
            parse_rfc3339(t) if type(t) is str else _ts(t),
            price_to_decimal(m["bp"]),
            to_decimal(m["bs"]),
            price_to_decimal(m["ap"]),
            to_decimal(m["as"]),
            self.name,
            bid_exchange if isinstance(bid_exchange, str) else "",
            ask_exchange if isinstance(ask_exchange, str) else "",
        )

    def _bar_from(
        self, m: dict, *, symbol: str, timeframe: str, updated: bool
    ) -> BarEvent:
        vwap = m.get("vw")
        count = m.get("n")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int)
        ):
            raise ValueError("trade count is not an integer")
        t = m["t"]
        return BarEvent(
            symbol,
            parse_rfc3339(t) if type(t) is str else _ts(t),
            price_to_decimal(m["o"]),
            price_to_decimal(m["h"]),
            price_to_decimal(m["l"]),
            price_to_decimal(m["c"]),
            to_decimal(m["v"]),
            self.name,
            timeframe,
            None if vwap is None else to_decimal(vwap),
            count,
            updated,
        )

    def _bar(self, m: dict) -> BarEvent:
        return self._bar_from(m, symbol=self._symbol(m), timeframe="1m", updated=False)

    def _updated_bar(self, m: dict) -> BarEvent:
        return self._bar_from(m, symbol=self._symbol(m), timeframe="1m", updated=True)

    def _daily_bar(self, m: dict) -> BarEvent:
        # A running partial bar of the current day, re-sent as it changes.
        return self._bar_from(m, symbol=self._symbol(m), timeframe="1d", updated=True)

    def _status(self, m: dict) -> Status | None:
        code = _text(m.get("sc"))
        reason = _text(m.get("rc"))
        if code in HALT_CODES:
            halted = True
        elif code in RESUME_CODES:
            halted = False
        elif code == LULD_CODE:
            halted = reason == "M"
        else:
            return None
        return Status(
            symbol=self._symbol(m),
            ts=_ts(m["t"]),
            provider=self.name,
            halted=halted,
            code=code,
            message=_text(m.get("sm")),
            reason=reason,
        )

    def _success(self, m: dict) -> Control | None:
        msg = _text(m.get("msg"))
        if msg == "connected":
            return Control(ControlType.CONNECTED, self.name, message=msg)
        if msg == "authenticated":
            return Control(ControlType.AUTHENTICATED, self.name, message=msg)
        return None

    def _error(self, m: dict) -> Control:
        code = m.get("code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError("error without a numeric code")
        kind = ERROR_CONTROL.get(code, ControlType.ERROR)
        return Control(
            kind,
            self.name,
            code=code,
            message=_text(m.get("msg")),
            reason=ERROR_REASON.get(code, ""),
        )

    def _subscription(self, m: dict) -> Control:
        symbols: set[str] = set()
        for key, value in m.items():
            if key == "T":
                continue
            if not isinstance(value, list):
                raise ValueError(f"subscription channel {key!r} is not a list")
            for symbol in value:
                if isinstance(symbol, str):
                    symbols.add(self.to_canonical.get(symbol, symbol))
        return Control(
            ControlType.SUBSCRIBED, self.name, symbols=tuple(sorted(symbols))
        )

    # --- history -------------------------------------------------------------
    def _classify_error(
        self, status: int, body: Any, message: str
    ) -> ProviderError | None:
        text = f"{self.name}: {message} (HTTP {status})"
        if status in (401, 403):
            return AuthenticationError(text, status=status)
        if status in (400, 404, 422) and "symbol" in message.lower():
            return UnknownSymbolError(text, status=status)
        return None

    @property
    def rest_feed(self) -> str:
        # The `test` stream feed has no REST counterpart; its data is IEX-shaped.
        return "iex" if self.feed == "test" else self.feed

    def fetch_bars(
        self, *, symbol: str, start: datetime, end: datetime, timeframe: str = "1m"
    ) -> Iterator[list[BarEvent]]:
        if timeframe not in REST_TIMEFRAMES:
            raise ProviderError(
                f"{self.name}: unsupported timeframe {timeframe!r}", permanent=True
            )
        provider_symbol = self.provider_symbol(symbol)
        crypto = is_crypto_symbol(provider_symbol)
        path = "/v1beta3/crypto/us/bars" if crypto else "/v2/stocks/bars"
        params: dict[str, Any] = {
            "symbols": provider_symbol,
            "timeframe": REST_TIMEFRAMES[timeframe],
            "start": to_rfc3339(start),
            "end": to_rfc3339(end),
            "limit": self.page_limit,
        }
        if not crypto:
            params["feed"] = self.rest_feed
            params["adjustment"] = "raw"
        seen_tokens: set[str] = set()
        while True:
            body = self.http.get_json(path, params)
            rows = self._page_rows(body, provider_symbol)
            page = []
            for row in rows:
                try:
                    bar = self._bar_from(
                        row, symbol=symbol, timeframe=timeframe, updated=False
                    )
                except (KeyError, ValueError, TypeError) as exc:
                    raise ProviderError(
                        f"{self.name}: bad bar in {path} response: {exc}",
                        permanent=False,
                    ) from None
                if start <= bar.ts < end:
                    page.append(bar)
            if page:
                yield page
            token = body.get("next_page_token")
            if not token:
                return
            if not isinstance(token, str) or token in seen_tokens:
                raise ProviderError(
                    f"{self.name}: pagination token repeated on {path}", permanent=False
                )
            seen_tokens.add(token)
            params["page_token"] = token

    def _page_rows(self, body: Any, provider_symbol: str) -> list[dict]:
        if not isinstance(body, dict) or "bars" not in body:
            raise ProviderError(
                f"{self.name}: unexpected bars response shape", permanent=False
            )
        bars = body["bars"]
        if bars is None:
            return []
        if isinstance(bars, dict):  # multi-symbol form
            rows = bars.get(provider_symbol) or []
        elif isinstance(bars, list):  # single-symbol form
            rows = bars
        else:
            raise ProviderError(
                f"{self.name}: unexpected bars response shape", permanent=False
            )
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ProviderError(
                f"{self.name}: unexpected bars response shape", permanent=False
            )
        return rows

    def fetch_snapshots(self, symbols: Iterable[str]) -> dict[str, Snapshot]:
        """Stock snapshots (`/v2/stocks/snapshots`, this feed) and crypto
        snapshots (`/v1beta3/crypto/us/snapshots`), `snapshot_batch` symbols
        per request (`marketdata.providers.snapshots` for the previous close)."""
        stocks: list[str] = []
        crypto: list[str] = []
        for symbol in dict.fromkeys(symbols):
            provider_symbol = self.provider_symbol(symbol)
            (crypto if is_crypto_symbol(provider_symbol) else stocks).append(symbol)
        out = snapshots_batched(
            stocks, size=self.snapshot_batch, fetch=self._stock_snapshots
        )
        out.update(
            snapshots_batched(
                crypto, size=self.snapshot_batch, fetch=self._crypto_snapshots
            )
        )
        return out

    def _stock_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        wanted = {self.provider_symbol(s): s for s in symbols}
        body = self.http.get_json(
            "/v2/stocks/snapshots",
            {"symbols": ",".join(wanted), "feed": self.rest_feed},
        )
        return self._snapshots_of(body, wanted, crypto=False)

    def _crypto_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        wanted = {self.provider_symbol(s): s for s in symbols}
        body = self.http.get_json(
            "/v1beta3/crypto/us/snapshots", {"symbols": ",".join(wanted)}
        )
        rows = body.get("snapshots") if isinstance(body, dict) else None
        return self._snapshots_of(rows, wanted, crypto=True)

    def _snapshots_of(
        self, rows: Any, wanted: dict[str, str], *, crypto: bool
    ) -> dict[str, Snapshot]:
        if not isinstance(rows, dict):
            raise ProviderError(
                f"{self.name}: unexpected snapshots response shape", permanent=False
            )
        out = {}
        for provider_symbol, symbol in wanted.items():
            snapshot = alpaca_snapshot(
                symbol, rows.get(provider_symbol), provider=self.name, crypto=crypto
            )
            if snapshot is not None:
                out[symbol] = snapshot
        return out
