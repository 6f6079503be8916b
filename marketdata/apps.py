from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import pre_migrate


def _timescale_check(sender, using, **kwargs) -> None:
    """Before any migration: a server that cannot give what settings.TIMESCALE
    asks for stops `migrate` with one line (marketdata.bar_storage)."""
    from django.db import connections

    from marketdata.bar_storage import timescale_check

    with connections[using].cursor() as cursor:
        timescale_check(cursor)


class MarketdataConfig(AppConfig):
    name = "marketdata"
    verbose_name = "Market data"

    def ready(self) -> None:
        pre_migrate.connect(
            _timescale_check, sender=self, dispatch_uid="marketdata.timescale_check"
        )
