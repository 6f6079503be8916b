"""URLs of `marketdata`, included by `core/urls.py` under `api/`.

The bars endpoint (`/api/instruments/<symbol>/bars`, `marketdata.api`) is
served by the token API (`api.endpoints.instruments`, URL name
`api:instrument_bars`), which adds token auth and its rate limit in front of
the same view.
"""

from __future__ import annotations

app_name = "marketdata_api"

urlpatterns: list = []
