"""Binance spot: combined streams (trade, kline_1m, bookTicker) and REST klines.

Wire facts: /work/shared/reference/providers.md §4. Market data needs no key.
Stream names use lowercase symbols, payloads and REST use uppercase. The
initial streams go in the URL (`/stream?streams=a/b/c`); later changes are
`SUBSCRIBE`/`UNSUBSCRIBE` messages with integer ids whose acks
(`{"result":null,"id":N}`) become `SUBSCRIBED` carrying the full current set,
like Alpaca's subscription frame. Prices and quantities arrive as strings and
are kept digit for digit. Times are milliseconds, or microseconds when the
connection asked for `timeUnit=MICROSECOND` (told apart by magnitude).

Over 400 lines: one vendor's adapter (combined-stream subscriptions and their
acks, three payload kinds, REST klines and snapshots) behind one class, as
every provider module is.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from marketdata.events import BarEvent, Control, ControlType, Event, Quote, Trade
from marketdata.providers.base import (
    InvalidRequestError,
    Provider,
    ProviderError,
    UnknownSymbolError,
)
from marketdata.providers.http import HttpClient
from marketdata.providers.snapshots import (
    Snapshot,
    binance_snapshot,
    snapshots_batched,
)
from marketdata.providers.timeparse import from_epoch_ms, from_epoch_us, to_epoch_ms

STREAMS = ("trade", "kline_1m", "bookTicker")
INTERVALS = {"1m": ("1m", 60_000), "1d": ("1d", 86_400_000)}
KLINE_LIMIT = 1000
VWAP_QUANTUM = Decimal("1e-8")
_BOOK_TICKER_KEYS = frozenset({"u", "s", "b", "B", "a", "A"})


def _ts(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"bad time {value!r}")
    return from_epoch_us(value) if value >= 10**14 else from_epoch_ms(value)


def _dec(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"expected a numeric string, got {type(value).__name__}")
    try:
        result = Decimal(value)
    except ArithmeticError:
        raise ValueError(f"not a number: {value[:40]!r}") from None
    if not result.is_finite():
        raise ValueError("non-finite number")
    return result


# Binance sends prices as strings, and a busy pair trades at the same few
# prices over and over. `Decimal(s)` depends only on the text, so a string
# maps to one shared immutable Decimal. Cleared when full (cheap; the hot set
# refills at once). Quantities rarely repeat and are not cached.
_PRICE_CACHE: dict[str, Decimal] = {}
_PRICE_CACHE_SIZE = 16_384


def _price(value: Any) -> Decimal:
    result = _PRICE_CACHE.get(value) if type(value) is str else None
    if result is None:
        result = _dec(value)
        if len(_PRICE_CACHE) >= _PRICE_CACHE_SIZE:
            _PRICE_CACHE.clear()
        _PRICE_CACHE[value] = result
    return result


class BinanceProvider(Provider):
    """Binance public market data."""

    name = "binance"
    asset_classes = frozenset({"crypto"})
    streams_per_symbol = len(STREAMS)
    #: ticker/24hr weighs 2 for up to 20 symbols (40 up to 100)
    snapshot_batch = 20

    def __init__(
        self,
        *,
        symbols: Mapping[str, str] | None = None,
        rate_limiter: Callable[[], None] | None = None,
        stream_base_url: str | None = None,
        api_url: str | None = None,
        streams: Iterable[str] = STREAMS,
        max_retries: int = 4,
        backoff: float = 0.5,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(symbols=symbols, rate_limiter=rate_limiter)
        from django.conf import settings

        self.stream_base_url = (stream_base_url or settings.BINANCE_STREAM_URL).rstrip(
            "/"
        )
        self.api_url = (api_url or settings.BINANCE_API_URL).rstrip("/")
        self.streams = tuple(streams)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.subscribed: set[str] = set()  # canonical symbols
        self._url_symbols: tuple[str, ...] = ()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, tuple[str, ...]]] = {}
        self.http = HttpClient(
            provider=self.name,
            base_url=self.api_url,
            rate_limiter=self._before_request,
            classify=self._classify_error,
            max_retries=max_retries,
            backoff=backoff,
        )

    # --- streaming -----------------------------------------------------------
    def stream_names(self, symbols: Iterable[str]) -> list[str]:
        return [
            f"{self.provider_symbol(symbol).lower()}@{stream}"
            for symbol in symbols
            for stream in self.streams
        ]

    def stream_url(self, *, asset_class: str, symbols: Iterable[str] = ()) -> str:
        symbols = tuple(symbols)
        self._url_symbols = symbols
        names = self.stream_names(symbols)
        if not names:
            return f"{self.stream_base_url}/stream"
        return f"{self.stream_base_url}/stream?streams={'/'.join(names)}"

    def handshake_events(self) -> list[Event]:
        """Binance sends nothing on connect; the streams named in the URL are
        live once the upgrade succeeds."""
        self.subscribed = set(self._url_symbols)
        self._pending.clear()
        events: list[Event] = [
            Control(ControlType.CONNECTED, self.name),
            Control(ControlType.AUTHENTICATED, self.name),
        ]
        if self.subscribed:
            events.append(
                Control(
                    ControlType.SUBSCRIBED,
                    self.name,
                    symbols=tuple(sorted(self.subscribed)),
                )
            )
        return events

    def auth_messages(self) -> list[str]:
        return []

    def _control_message(self, method: str, symbols: Iterable[str]) -> list[str]:
        symbols = tuple(symbols)
        params = self.stream_names(symbols)
        if not params:
            return []
        request_id = next(self._ids)
        self._pending[request_id] = (method, symbols)
        return [
            orjson.dumps(
                {"method": method, "params": params, "id": request_id}
            ).decode()
        ]

    def subscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        return self._control_message("SUBSCRIBE", symbols)

    def unsubscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        return self._control_message("UNSUBSCRIBE", symbols)

    def _malformed(self, why: str) -> Control:
        return Control(ControlType.MALFORMED, self.name, message=why[:200])

    def parse_frame(
        self, frame: str | bytes, received_at: datetime | None = None
    ) -> list[Event]:
        try:
            data = orjson.loads(frame)
        except Exception as exc:
            return [self._malformed(f"undecodable frame: {type(exc).__name__}")]
        if not isinstance(data, dict):
            return [self._malformed("frame is not an object")]
        try:
            if "stream" in data and "data" in data:
                payload = data["data"]
                if not isinstance(payload, dict):
                    return [self._malformed("stream payload is not an object")]
                event = self._payload(payload, received_at)
            elif (
                "result" in data
                or "error" in data
                or ("code" in data and "msg" in data)
            ):
                event = self._response(data)
            else:
                event = self._payload(data, received_at)
        except Exception as exc:
            return [self._malformed(f"bad message: {exc}")]
        return [] if event is None else [event]

    def _payload(self, p: dict, received_at: datetime | None) -> Event | None:
        kind = p.get("e")
        if kind == "trade":
            return self._trade(p, str(p["t"]))
        if kind == "aggTrade":
            return self._trade(p, str(p["a"]))
        if kind == "kline":
            return self._kline(p)
        if kind == "serverShutdown":
            return Control(
                ControlType.SERVER_SHUTDOWN, self.name, message="serverShutdown"
            )
        if kind is None:
            if _BOOK_TICKER_KEYS <= p.keys():
                return self._book_ticker(p, received_at)
            if "lastUpdateId" in p:
                return None  # partial depth snapshot: not used
            raise ValueError("payload of unknown shape")
        return None  # other event types (depthUpdate, 24hrTicker, ...) are not used

    def _symbol(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError("missing symbol")
        return self.to_canonical.get(value, value)

    # Events are built positionally (field order of marketdata/events.py):
    # half the cost of keywords on a frozen slots dataclass.
    def _trade(self, p: dict, trade_id: str) -> Trade:
        return Trade(
            self._symbol(p["s"]),
            _ts(p["T"]),
            _price(p["p"]),
            _dec(p["q"]),
            self.name,
            trade_id,
        )

    def _kline(self, p: dict) -> BarEvent:
        k = p["k"]
        if not isinstance(k, dict):
            raise ValueError("kline without k")
        interval = k["i"]
        volume = _dec(k["v"])
        quote_volume = _dec(k["q"]) if "q" in k else None
        vwap = None
        if quote_volume is not None and volume:
            vwap = (quote_volume / volume).quantize(VWAP_QUANTUM)
        count = k.get("n")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int)
        ):
            raise ValueError("trade count is not an integer")
        closed = k["x"]
        if not isinstance(closed, bool):
            raise ValueError("x is not a boolean")
        return BarEvent(
            self._symbol(k.get("s") or p["s"]),
            _ts(k["t"]),
            _price(k["o"]),
            _price(k["h"]),
            _price(k["l"]),
            _price(k["c"]),
            volume,
            self.name,
            str(interval),
            vwap,
            count,
            False,
            closed,
        )

    def _book_ticker(self, p: dict, received_at: datetime | None) -> Quote:
        # bookTicker carries no time: stamp it with the receive time.
        return Quote(
            self._symbol(p["s"]),
            received_at or self.clock(),
            _price(p["b"]),
            _dec(p["B"]),
            _price(p["a"]),
            _dec(p["A"]),
            self.name,
        )

    def _response(self, data: dict) -> Control:
        request_id = data.get("id")
        pending = (
            self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        )
        error = data.get("error")
        if error is not None or "code" in data:
            detail = error if isinstance(error, dict) else data
            code = detail.get("code")
            message = str(detail.get("msg") or error or "")
            code = (
                code if isinstance(code, int) and not isinstance(code, bool) else None
            )
            if pending is not None and pending[0] == "SUBSCRIBE":
                # Code 4 "Too many subscriptions": over the 1,024 streams of
                # a connection. Binance has no unknown-symbol error (such a
                # stream subscribes and stays silent, providers.md 5).
                too_many = code == 4 or "too many" in message.lower()
                return Control(
                    ControlType.SUBSCRIPTION_ERROR,
                    self.name,
                    code=code,
                    message=message,
                    symbols=pending[1],
                    reason=Control.PLAN_LIMIT if too_many else Control.INVALID_REQUEST,
                )
            return Control(ControlType.ERROR, self.name, code=code, message=message)
        result = data["result"]
        if isinstance(result, list):  # LIST_SUBSCRIPTIONS
            self.subscribed = {
                self._symbol(name.split("@", 1)[0].upper())
                for name in result
                if isinstance(name, str)
            }
        elif result is not None:
            return Control(
                ControlType.ERROR,
                self.name,
                message=f"unexpected result {result!r}"[:200],
            )
        elif pending is not None:
            method, symbols = pending
            if method == "SUBSCRIBE":
                self.subscribed.update(symbols)
            else:
                self.subscribed.difference_update(symbols)
        return Control(
            ControlType.SUBSCRIBED, self.name, symbols=tuple(sorted(self.subscribed))
        )

    # --- REST ----------------------------------------------------------------
    def _classify_error(
        self, status: int, body: Any, message: str
    ) -> ProviderError | None:
        code = body.get("code") if isinstance(body, dict) else None
        text = f"{self.name}: {message} (HTTP {status}, code {code})"
        if code == -1121:
            return UnknownSymbolError(text, status=status)
        if isinstance(code, int) and -1199 <= code <= -1100:
            return InvalidRequestError(text, status=status)
        if status == 403:
            # Binance's WAF, not credentials: public market data has no key.
            return ProviderError(
                f"{text}: blocked by the web application firewall", status=status
            )
        return None

    def fetch_snapshots(self, symbols: Iterable[str]) -> dict[str, Snapshot]:
        """Last price and book top from `/api/v3/ticker/24hr` (`symbols=[...]`,
        `snapshot_batch` per request); the UTC day and previous close from
        the last two daily klines of each symbol (the 24-hour ticker is a
        rolling window, see `marketdata.providers.snapshots`)."""
        return snapshots_batched(
            list(dict.fromkeys(symbols)),
            size=self.snapshot_batch,
            fetch=self._snapshots,
        )

    def _snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        wanted = {self.provider_symbol(s).upper(): s for s in symbols}
        if len(wanted) == 1:
            params = {"symbol": next(iter(wanted))}
        else:
            params = {"symbols": orjson.dumps(list(wanted)).decode()}
        body = self.http.get_json("/api/v3/ticker/24hr", params)
        rows = [body] if isinstance(body, dict) else body
        if not isinstance(rows, list):
            raise ProviderError(
                f"{self.name}: unexpected ticker/24hr response", permanent=False
            )
        out = {}
        for row in rows:
            symbol = wanted.get(row.get("symbol")) if isinstance(row, dict) else None
            if symbol is None:
                continue
            klines = self.http.get_json(
                "/api/v3/klines",
                {"symbol": row["symbol"], "interval": "1d", "limit": 2},
            )
            out[symbol] = binance_snapshot(
                symbol, row, klines, provider=self.name, price=_price, number=_dec
            )
        return out

    def fetch_bars(
        self, *, symbol: str, start: datetime, end: datetime, timeframe: str = "1m"
    ) -> Iterator[list[BarEvent]]:
        """Klines in windows of 1000 rows from `startTime`; the still-open
        candle (closeTime in the future) is dropped."""
        if timeframe not in INTERVALS:
            raise InvalidRequestError(
                f"{self.name}: unsupported timeframe {timeframe!r}"
            )
        interval, step_ms = INTERVALS[timeframe]
        provider_symbol = self.provider_symbol(symbol).upper()
        start_ms = to_epoch_ms(start)
        end_ms = to_epoch_ms(end)
        cursor = start_ms
        while cursor < end_ms:
            rows = self.http.get_json(
                "/api/v3/klines",
                {
                    "symbol": provider_symbol,
                    "interval": interval,
                    "startTime": cursor,
                    "endTime": end_ms - 1,
                    "limit": KLINE_LIMIT,
                },
            )
            if not isinstance(rows, list):
                raise ProviderError(
                    f"{self.name}: unexpected klines response", permanent=False
                )
            now_ms = to_epoch_ms(self.clock())
            page = []
            last_open = None
            for row in rows:
                try:
                    open_ms = row[0]
                    bar = self._kline_row(row, symbol=symbol, timeframe=timeframe)
                except (
                    IndexError,
                    KeyError,
                    TypeError,
                    ValueError,
                    ArithmeticError,
                ) as exc:
                    raise ProviderError(
                        f"{self.name}: bad kline row: {exc}", permanent=False
                    ) from None
                last_open = open_ms
                if row[6] > now_ms:
                    continue  # the current, still-forming candle
                if start_ms <= open_ms < end_ms:
                    page.append(bar)
            if page:
                yield page
            if len(rows) < KLINE_LIMIT or last_open is None:
                return
            next_cursor = last_open + step_ms
            if next_cursor <= cursor:
                raise ProviderError(
                    f"{self.name}: klines did not advance", permanent=False
                )
            cursor = next_cursor

    def _kline_row(self, row: Any, *, symbol: str, timeframe: str) -> BarEvent:
        if not isinstance(row, list) or len(row) < 9:
            raise ValueError("kline row is not a 12-element array")
        open_ms, o, h, lo, c, v, close_ms, quote_volume, count = row[:9]
        if (
            not isinstance(close_ms, int)
            or isinstance(count, bool)
            or not isinstance(count, int)
        ):
            raise ValueError("kline row has bad types")
        volume = _dec(v)
        vwap = (_dec(quote_volume) / volume).quantize(VWAP_QUANTUM) if volume else None
        return BarEvent(
            symbol,
            _ts(open_ms),
            _price(o),
            _price(h),
            _price(lo),
            _price(c),
            volume,
            self.name,
            timeframe,
            vwap,
            count,
        )
