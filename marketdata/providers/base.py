"""The provider interface the stream worker and the history loader use.

A provider adapter knows one vendor's wire protocol: where to connect, what to
send to authenticate and (un)subscribe, how to turn one received frame into
normalized events (`marketdata.events`), and how to page through historical
bars over REST. It never touches the database: symbol mapping comes in as a
plain dict at construction.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from marketdata.events import BarEvent, Event

if TYPE_CHECKING:
    from marketdata.providers.snapshots import Snapshot


class ProviderError(Exception):
    """A provider refused or failed. `permanent` errors (bad credentials,
    unknown symbol, invalid request) must not be retried; others may be."""

    def __init__(
        self, message: str, *, permanent: bool = False, status: int | None = None
    ):
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class AuthenticationError(ProviderError):
    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message, permanent=True, status=status)


class UnknownSymbolError(ProviderError):
    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message, permanent=True, status=status)


class InvalidRequestError(ProviderError):
    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message, permanent=True, status=status)


class RateLimitedError(ProviderError):
    """Retries ran out while the provider kept answering 429."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
    ):
        super().__init__(message, permanent=False, status=status)
        self.retry_after = retry_after


class Provider(abc.ABC):
    """One vendor. `symbols` maps canonical symbols to the vendor's own
    (`{"BTC/USD": "BTCUSDT"}`); symbols absent from it are sent unchanged."""

    name: str = ""
    #: asset classes this provider can stream (`marketdata.models.AssetClass` values)
    asset_classes: frozenset[str] = frozenset()
    #: True when the stream and the history include US equities' pre- and
    #: post-market minutes (04:00-20:00 New York): those minutes then count
    #: as minutes that may hold a bar (gaps, coverage, the sweep).
    extended_hours: bool = False
    #: plan symbol limits (`streaming.budget`): the asset classes the plan's
    #: cap counts (None: all), streams one symbol takes, and whether the
    #: provider refuses each subscribe message over the cap on its own
    #: (Finnhub) rather than the whole request (Alpaca, Binance)
    plan_limited_classes: frozenset[str] | None = None
    streams_per_symbol: int = 1
    plan_limit_per_message: bool = False
    #: canonical symbols per `fetch_snapshots` call a caller should send (the
    #: vendor's batch size); 0 = the provider serves no snapshots
    snapshot_batch: int = 0

    def __init__(
        self,
        *,
        symbols: Mapping[str, str] | None = None,
        rate_limiter: Callable[[], None] | None = None,
    ) -> None:
        self.to_provider: dict[str, str] = dict(symbols or {})
        self.to_canonical: dict[str, str] = {v: k for k, v in self.to_provider.items()}
        #: called before every REST request (a Redis-shared limiter plugs in here)
        self.rate_limiter = rate_limiter

    def _before_request(self) -> None:
        """REST adapters call this before every request; it defers to
        `rate_limiter` as it is at that moment."""
        if self.rate_limiter is not None:
            self.rate_limiter()

    def map_symbol(self, symbol: str, provider_symbol: str | None = None) -> None:
        """Stream and parse `symbol` as `provider_symbol` (itself when None)."""
        provider_symbol = provider_symbol or symbol
        self.to_provider[symbol] = provider_symbol
        self.to_canonical[provider_symbol] = symbol

    def provider_symbol(self, symbol: str) -> str:
        return self.to_provider.get(symbol, symbol)

    def canonical_symbol(self, provider_symbol: str) -> str:
        return self.to_canonical.get(provider_symbol, provider_symbol)

    # --- streaming -----------------------------------------------------------
    @abc.abstractmethod
    def stream_url(self, *, asset_class: str, symbols: Iterable[str] = ()) -> str:
        """WebSocket URL for instruments of `asset_class`."""

    def stream_headers(self) -> list[str]:
        """Extra HTTP headers for the upgrade request (`"Name: value"`)."""
        return []

    @abc.abstractmethod
    def auth_messages(self) -> list[str]:
        """Text frames to send once connected (may be empty)."""

    @abc.abstractmethod
    def subscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        """Text frames subscribing the canonical `symbols`."""

    @abc.abstractmethod
    def unsubscribe_messages(self, symbols: Iterable[str]) -> list[str]:
        """Text frames unsubscribing the canonical `symbols`."""

    def handshake_events(self) -> list[Event]:
        """Events implied by a successful WebSocket upgrade, for providers
        that authenticate in the URL (Finnhub) or subscribe in it (Binance),
        so the worker can treat every provider alike. Alpaca: none (it says
        so in-band)."""
        return []

    @abc.abstractmethod
    def parse_frame(
        self, frame: str | bytes, received_at: datetime | None = None
    ) -> list[Event]:
        """Normalize one received frame. Never raises: a frame that cannot be
        understood yields one `Control(ControlType.MALFORMED)`. `received_at`
        stamps messages that carry no time of their own (Binance bookTicker);
        it defaults to now."""

    def parse_feed(self, frame: str | bytes) -> list:
        """`parse_frame` as the stream worker runs it. A provider may keep
        stretches of quotes as a `QuoteRun` (`alpaca_wire`), which the worker
        applies a symbol at a time; by default, `parse_frame`."""
        return self.parse_frame(frame)

    # --- history -------------------------------------------------------------
    @abc.abstractmethod
    def fetch_bars(
        self, *, symbol: str, start: datetime, end: datetime, timeframe: str = "1m"
    ) -> Iterator[list[BarEvent]]:
        """Pages of bars with `start <= ts < end` (`timeframe` "1m" or "1d"),
        oldest first. Raises `ProviderError` subclasses."""

    # --- latest state (cold starts) -----------------------------------------
    def fetch_snapshots(self, symbols: Iterable[str]) -> dict[str, Snapshot]:
        """Latest trade, quote, day figures and previous close of the
        canonical `symbols` (`marketdata.providers.snapshots`), keyed by
        canonical symbol; symbols the vendor does not know are absent.
        Raises `ProviderError` subclasses."""
        raise ProviderError(f"{self.name}: no snapshot endpoint", permanent=True)
