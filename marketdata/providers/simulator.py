"""The built-in exchange simulator, spoken to through its Alpaca protocol.

`manage.py simulate_exchange` serves Alpaca's stream and REST paths on
loopback, and settings point `ALPACA_STREAM_URL`/`ALPACA_DATA_URL` at it when
`TAPELINE_PROVIDER=simulator`. This adapter is the Alpaca one with the
simulator's own credentials; its events carry provider "simulator".
"""

from __future__ import annotations

from marketdata.providers.alpaca import AlpacaProvider


class SimulatorProvider(AlpacaProvider):
    name = "simulator"
    #: instruments' provider symbols are looked up under Alpaca's name
    symbol_namespace = "alpaca"
    #: the simulator serves trading statuses on every feed
    status_feeds = None

    def _default_credentials(self) -> tuple[str, str]:
        from django.conf import settings

        return settings.SIMULATOR_KEY_ID, settings.SIMULATOR_SECRET
