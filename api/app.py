"""The token API: one NinjaAPI under /api/, its docs at /api/docs and the
OpenAPI schema at /api/openapi.json (both for logged-in users).

Adding a resource is a module in `api/endpoints/` with a `router` and one
line in ROUTERS.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from ninja import NinjaAPI

from api import errors
from api.auth import AUTH
from api.endpoints import (
    alerts,
    candles,
    instruments,
    positions,
    transactions,
    watchlists,
)

# `instruments` ends with `/instruments/{path:symbol}`, which would also match
# "AAPL/candles": routers with deeper instrument paths come before it.
ROUTERS = (candles, instruments, watchlists, positions, transactions, alerts)

api = NinjaAPI(
    title="Tapeline API",
    version="1",
    description=(
        "Personal tokens: `Authorization: Bearer tl_…` (make one at "
        "/preferences/tokens/). Read-only tokens may only GET. Errors are "
        '`{"error": "...", "fields": {...}}`; 429 carries `Retry-After`.'
    ),
    urls_namespace="api",
    auth=AUTH,
    parser=errors.JsonParser(),
    docs_decorator=login_required,
)
errors.install(api)
for module in ROUTERS:
    api.add_router("", module.router)
