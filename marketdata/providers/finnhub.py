"""Finnhub: WebSocket trades, REST quote (previous close), symbol search and
candles.

Wire facts: /work/shared/reference/providers.md §3. The token travels in the
stream URL (the only place Finnhub takes it for the socket: never log that
URL) and in the `X-Finnhub-Token` header for REST. A bad key fails the
WebSocket upgrade (HTTP 401) rather than in-band, so a successful upgrade
means connected and authenticated (`handshake_events`). Trades carry no id; the
server sends `{"type":"ping"}` keep-alives that need no reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from marketdata.events import BarEvent, Control, ControlType, Event, Trade
from marketdata.providers.base import (
    AuthenticationError,
    InvalidRequestError,
    Provider,
    ProviderError,
    UnknownSymbolError,
)
from marketdata.providers.http import HttpClient
from marketdata.providers.snapshots import Snapshot, finnhub_snapshot
from marketdata.providers.timeparse import (
    from_epoch_ms,
    from_epoch_seconds,
    price_to_decimal,
    to_decimal,
)

RESOLUTIONS = {"1m": "1", "1d": "D"}
# Intraday candles come at most a month per call (F-OAS); daily in yearly windows.
WINDOWS = {"1m": timedelta(days=28), "1d": timedelta(days=365)}
CRYPTO_EXCHANGES = frozenset(
    {
        "BINANCE", "COINBASE", "KRAKEN", "BITFINEX", "BITSTAMP", "GEMINI", "HUOBI",
        "KUCOIN", "OKEX", "POLONIEX", "HITBTC", "BITMEX", "BITTREX", "FTX",
    }
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z0-9:._/\-]+")


@dataclass(frozen=True, slots=True)
class FinnhubQuote:
    symbol: str
    price: Decimal
    previous_close: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    change: Decimal | None
    change_percent: Decimal | None
    ts: datetime | None


@dataclass(frozen=True, slots=True)
class SymbolMatch:
    symbol: str
    display_symbol: str
    description: str
    type: str


class FinnhubProvider(Provider):
    """Finnhub trade stream and REST."""

    name = "finnhub"
    asset_classes = frozenset({"equity", "etf", "crypto", "fx"})
    plan_limit_per_message = True
    #: `/quote` takes one symbol; the free plan allows 60 calls a minute
    #: (the rate limiter paces them), so callers send one at a time
    snapshot_batch = 1

    def __init__(
        self,
        *,
        symbols: Mapping[str, str] | None = None,
        rate_limiter: Callable[[], None] | None = None,
        token: str | None = None,
        stream_base_url: str | None = None,
        api_url: str | None = None,
        max_retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        super().__init__(symbols=symbols, rate_limiter=rate_limiter)
        from django.conf import settings

        self.token = self._default_token() if token is None else token
        self.stream_base_url = stream_base_url or settings.FINNHUB_STREAM_URL
        self.api_url = (api_url or settings.FINNHUB_API_URL).rstrip("/")
        self.subscribed: set[str] = set()
        self.http = HttpClient(
            provider=self.name,
            base_url=self.api_url,
            # The header rather than `?token=` keeps the key out of URLs, which
            # urllib3 logs at DEBUG level.
            headers={"X-Finnhub-Token": self.token},
            rate_limiter=self._before_request,
            classify=self._classify_error,
            max_retries=max_retries,
            backoff=backoff,
        )

    def _default_token(self) -> str:
        from django.conf import settings

        return settings.FINNHUB_TOKEN

    def __repr__(self) -> str:
        return f"<{type(self).__name__} api={self.api_url}>"

    # --- streaming -----------------------------------------------------------
    def stream_url(self, *, asset_class: str, symbols: Iterable[str] = ()) -> str:
        return f"{self.stream_base_url}?token={self.token}"

    def handshake_events(self) -> list[Event]:
        return [
            Control(ControlType.CONNECTED, self.name),
            Control(ControlType.AUTHENTICATED, self.name),
        ]

    def auth_messages(self) -> list[str]:
        return []

    def subscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        messages = []
        for symbol in symbols:
            provider_symbol = self.provider_symbol(symbol)
            self.subscribed.add(provider_symbol)
            messages.append(
                orjson.dumps({"type": "subscribe", "symbol": provider_symbol}).decode()
            )
        return messages

    def unsubscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        messages = []
        for symbol in symbols:
            provider_symbol = self.provider_symbol(symbol)
            self.subscribed.discard(provider_symbol)
            messages.append(
                orjson.dumps(
                    {"type": "unsubscribe", "symbol": provider_symbol}
                ).decode()
            )
        return messages

    def _malformed(self, why: str) -> Control:
        return Control(ControlType.MALFORMED, self.name, message=why[:200])

    def parse_frame(
        self, frame: str | bytes, received_at: datetime | None = None
    ) -> list[Event]:
        try:
            data = orjson.loads(frame)
        except Exception as exc:
            return [self._malformed(f"undecodable frame: {type(exc).__name__}")]
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return [self._malformed("frame is not an object with a type")]
        kind = data["type"]
        if kind == "trade":
            rows = data.get("data")
            if not isinstance(rows, list):
                return [self._malformed("trade frame without a data array")]
            events: list[Event] = []
            for row in rows:
                try:
                    events.append(self._trade(row))
                except Exception as exc:
                    events.append(self._malformed(f"bad trade: {exc}"))
            return events
        if kind == "ping":
            return [Control(ControlType.PING, self.name)]
        if kind == "error":
            message = data.get("msg")
            if not isinstance(message, str):
                message = str(message)[:200]
            return [self._error(message)]
        return []  # news, press releases and future types are not market data

    def _trade(self, row: Any) -> Trade:
        if not isinstance(row, dict):
            raise ValueError("trade is not an object")
        symbol = row["s"]
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("missing symbol")
        conditions = row.get("c")
        # Positional: field order of marketdata/events.py Trade (half the
        # construction cost of keywords on a frozen slots dataclass).
        return Trade(
            self.to_canonical.get(symbol, symbol),
            from_epoch_ms(row["t"]),
            price_to_decimal(row["p"]),
            to_decimal(row["v"]),
            self.name,
            None,
            "",
            tuple([str(c) for c in conditions]) if isinstance(conditions, list) else (),
        )

    def _error(self, message: str) -> Control:
        """Symbol errors become SUBSCRIPTION_ERROR: "Subscribing to too many
        symbols" is the plan's cap (the refused symbol is not named; earlier
        ones keep streaming), an error naming subscribed symbols marks those
        unknown, any other symbol error refuses the request."""
        lowered = message.lower()
        if "symbol" in lowered:
            if "too many" in lowered:
                return Control(
                    ControlType.SUBSCRIPTION_ERROR,
                    self.name,
                    message=message,
                    reason=Control.PLAN_LIMIT,
                )
            named = [w for w in _WORD.findall(message) if w in self.subscribed]
            return Control(
                ControlType.SUBSCRIPTION_ERROR,
                self.name,
                message=message,
                symbols=tuple(self.canonical_symbol(w) for w in named),
                reason=Control.UNKNOWN_SYMBOL if named else Control.INVALID_REQUEST,
            )
        return Control(ControlType.ERROR, self.name, message=message)

    # --- REST ----------------------------------------------------------------
    def _classify_error(
        self, status: int, body: Any, message: str
    ) -> ProviderError | None:
        text = f"{self.name}: {message} (HTTP {status})"
        if status in (401, 403):
            # 403 is also the answer for premium-only endpoints on a free key.
            return AuthenticationError(text, status=status)
        if status in (400, 422):
            return InvalidRequestError(text, status=status)
        return None

    def quote(self, *, symbol: str) -> FinnhubQuote:
        """Current price and previous close. Finnhub answers an unknown symbol
        with an all-zero body, which becomes `UnknownSymbolError`."""
        provider_symbol = self.provider_symbol(symbol)
        body = self.http.get_json("/quote", {"symbol": provider_symbol})
        if not isinstance(body, dict):
            raise ProviderError(
                f"{self.name}: unexpected /quote response", permanent=False
            )
        try:
            values = {
                k: to_decimal(body.get(k) or 0) for k in ("c", "pc", "o", "h", "l")
            }
            change = body.get("d")
            change_percent = body.get("dp")
            t = body.get("t")
            ts = from_epoch_seconds(t) if t else None
            quote = FinnhubQuote(
                symbol=symbol,
                price=values["c"],
                previous_close=values["pc"],
                open=values["o"],
                high=values["h"],
                low=values["l"],
                change=None if change is None else to_decimal(change),
                change_percent=None
                if change_percent is None
                else to_decimal(change_percent),
                ts=ts,
            )
        except (ValueError, TypeError, OverflowError) as exc:
            raise ProviderError(f"{self.name}: bad /quote response: {exc}") from None
        if not any(values.values()) and ts is None:
            raise UnknownSymbolError(f"{self.name}: unknown symbol {symbol!r}")
        return quote

    def fetch_snapshots(self, symbols: Iterable[str]) -> dict[str, Snapshot]:
        """One `/quote` per symbol, each behind the rate limiter; `pc` is the
        previous close. Unknown symbols (all-zero body) are absent."""
        out = {}
        for symbol in dict.fromkeys(symbols):
            body = self.http.get_json(
                "/quote", {"symbol": self.provider_symbol(symbol)}
            )
            snapshot = finnhub_snapshot(symbol, body, provider=self.name)
            if snapshot is not None:
                out[symbol] = snapshot
        return out

    def search(self, *, query: str, exchange: str | None = None) -> list[SymbolMatch]:
        """Symbol lookup (`/search`)."""
        params = {"q": query}
        if exchange:
            params["exchange"] = exchange
        body = self.http.get_json("/search", params)
        rows = body.get("result") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise ProviderError(
                f"{self.name}: unexpected /search response", permanent=False
            )
        return [
            SymbolMatch(
                symbol=str(r.get("symbol", "")),
                display_symbol=str(r.get("displaySymbol", "")),
                description=str(r.get("description", "")),
                type=str(r.get("type", "")),
            )
            for r in rows
            if isinstance(r, dict)
        ]

    def candle_path(self, provider_symbol: str) -> str:
        exchange, sep, _ = provider_symbol.partition(":")
        if not sep:
            return "/stock/candle"
        return (
            "/crypto/candle"
            if exchange.upper() in CRYPTO_EXCHANGES
            else "/forex/candle"
        )

    def fetch_bars(
        self, *, symbol: str, start: datetime, end: datetime, timeframe: str = "1m"
    ) -> Iterator[list[BarEvent]]:
        """Candles in windows (a month intraday, a year daily). Premium-only
        on Finnhub: a free key gets `AuthenticationError` with Finnhub's own
        message."""
        if timeframe not in RESOLUTIONS:
            raise InvalidRequestError(
                f"{self.name}: unsupported timeframe {timeframe!r}"
            )
        provider_symbol = self.provider_symbol(symbol)
        path = self.candle_path(provider_symbol)
        window_start = start
        while window_start < end:
            window_end = min(end, window_start + WINDOWS[timeframe])
            body = self.http.get_json(
                path,
                {
                    "symbol": provider_symbol,
                    "resolution": RESOLUTIONS[timeframe],
                    "from": int(window_start.timestamp()),
                    # `to` is inclusive; the range here is end-exclusive
                    "to": int(window_end.timestamp()) - 1,
                },
            )
            page = self._candles(body, symbol=symbol, timeframe=timeframe, path=path)
            page = [b for b in page if window_start <= b.ts < window_end]
            if page:
                yield page
            window_start = window_end

    def _candles(
        self, body: Any, *, symbol: str, timeframe: str, path: str
    ) -> list[BarEvent]:
        if not isinstance(body, dict) or body.get("s") not in ("ok", "no_data"):
            raise ProviderError(
                f"{self.name}: unexpected {path} response", permanent=False
            )
        if body["s"] == "no_data":
            return []
        try:
            columns = [body[k] for k in ("t", "o", "h", "l", "c", "v")]
            if (
                not all(isinstance(c, list) for c in columns)
                or len({len(c) for c in columns}) != 1
            ):
                raise ValueError("candle arrays differ in length")
            name = self.name
            return [
                BarEvent(
                    symbol,
                    from_epoch_seconds(t),
                    price_to_decimal(o),
                    price_to_decimal(h),
                    price_to_decimal(lo),
                    price_to_decimal(c),
                    to_decimal(v),
                    name,
                    timeframe,
                )
                for t, o, h, lo, c, v in zip(*columns, strict=True)
            ]
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise ProviderError(
                f"{self.name}: bad candles in {path} response: {exc}", permanent=False
            ) from None
