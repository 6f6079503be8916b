"""Provider registry: name -> adapter class, looked up lazily by dotted path."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from marketdata.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "alpaca": "marketdata.providers.alpaca.AlpacaProvider",
    "finnhub": "marketdata.providers.finnhub.FinnhubProvider",
    "binance": "marketdata.providers.binance.BinanceProvider",
    "simulator": "marketdata.providers.simulator.SimulatorProvider",
    "csv": "marketdata.providers.csv_files.CsvProvider",
}


def provider_class(name: str | None = None) -> type[Provider]:
    name = name or settings.TAPELINE_PROVIDER
    try:
        dotted = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"Unknown provider {name!r}; known: {known}") from None
    module_path, _, attr = dotted.rpartition(".")
    return getattr(import_module(module_path), attr)


def serves_extended_hours(name: str | None) -> bool:
    """Whether provider `name` streams and serves pre- and post-market minutes
    (False for unknown names: only the regular session is then expected)."""
    try:
        return provider_class(name).extended_hours
    except (ValueError, ImportError):
        return False
