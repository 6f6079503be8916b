"""JSON API of `marketdata`, included by `core/urls.py` under `api/`."""

from __future__ import annotations

from django.urls import re_path

from marketdata import api

app_name = "marketdata_api"

urlpatterns = [
    # Symbols may contain "/" (BTC/USD) and "."; the path is decoded before
    # matching, so `BTC%2FUSD` arrives here as `BTC/USD` too.
    re_path(
        r"^instruments/(?P<symbol>[^?#]+?)/bars/?$",
        api.instrument_bars,
        name="instrument_bars",
    ),
]
