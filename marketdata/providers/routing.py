"""Which provider serves an instrument: the one place that decides.

Each asset class has an ordered list of providers. Equities (and ETFs, FX)
use `TAPELINE_PROVIDERS` (`alpaca,finnhub`), crypto `TAPELINE_CRYPTO_PROVIDERS`
(`alpaca,binance`); the single-provider settings `TAPELINE_PROVIDER` and
`TAPELINE_CRYPTO_PROVIDER` are shorthands for one-element lists. A class
without a list of its own takes the providers of the equities list that
stream it. The first provider of the list is the primary: history, backfill
and snapshots use it; the stream worker starts there and fails over along the
list (`streaming.failover`).

`provider_build` makes an adapter with the instruments' symbol mapping and
the Redis-shared REST rate limiter, for every caller alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from django.conf import settings

from marketdata.providers import PROVIDERS, provider_class

if TYPE_CHECKING:
    from marketdata.models import Instrument
    from marketdata.providers.base import Provider


def names_of(value: str | Sequence[str] | None) -> list[str]:
    """`"alpaca, finnhub"` or a list -> `["alpaca", "finnhub"]` (no blanks,
    no repeats, order kept)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    names: list[str] = []
    for item in items:
        name = item.strip().lower()
        if name and name not in names:
            names.append(name)
    return names


def unknown_names(*lists: str | Sequence[str] | None) -> list[str]:
    """Names in `lists` that are no provider (for a clear error at start)."""
    return [n for value in lists for n in names_of(value) if n not in PROVIDERS]


def chain(
    asset_class: str,
    *,
    providers: str | Sequence[str] | None = None,
    crypto_providers: str | Sequence[str] | None = None,
) -> list[str]:
    """The providers that stream `asset_class`, primary first. `providers`
    and `crypto_providers` override the settings (the worker's command-line
    options); unknown names raise ValueError."""
    equities = names_of(providers) or _configured(
        settings.TAPELINE_PROVIDERS, settings.TAPELINE_PROVIDER
    )
    crypto = names_of(crypto_providers) or _configured(
        settings.TAPELINE_CRYPTO_PROVIDERS, settings.TAPELINE_CRYPTO_PROVIDER
    )
    if asset_class == "crypto" and crypto:
        candidates = crypto
    else:
        candidates = equities
    return [n for n in candidates if asset_class in provider_class(n).asset_classes]


def _configured(names: Sequence[str], shorthand: str) -> list[str]:
    """The list setting, unless the shorthand says otherwise (it wins: it is
    the primary, or the only provider)."""
    listed = names_of(names)
    shorthand = (shorthand or "").strip().lower()
    if listed and listed[0] == shorthand:
        return listed
    return [shorthand] if shorthand else []


def primary_name(asset_class: str, **overrides) -> str:
    """The provider whose history, backfill and snapshots serve `asset_class`
    (the primary of its list; the main provider when none streams it)."""
    names = chain(asset_class, **overrides)
    return names[0] if names else settings.TAPELINE_PROVIDER


def history_provider_name(*, instrument: Instrument) -> str:
    """The provider whose REST history serves `instrument` by default."""
    return primary_name(instrument.asset_class)


def symbol_namespace(name: str) -> str:
    """The key of `Instrument.provider_symbols` that maps symbols for `name`
    (the simulator speaks Alpaca's protocol and maps as Alpaca)."""
    return getattr(provider_class(name), "symbol_namespace", None) or name


def provider_build(
    *,
    name: str,
    instruments: Iterable[Instrument],
    rate_limited: bool = True,
    **options,
) -> Provider:
    """An adapter for `name` with the instruments' symbol mapping and the
    Redis-shared rate limiter plugged into its request hook."""
    from marketdata.ratelimit import rate_limiter_for

    namespace = symbol_namespace(name)
    symbols = {i.symbol: i.provider_symbol(namespace) for i in instruments}
    limiter = rate_limiter_for(name) if rate_limited else None
    return provider_class(name)(symbols=symbols, rate_limiter=limiter, **options)
