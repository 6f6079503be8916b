"""The instrument chart's remembered indicators, and CSV downloads of what
the pages show: an instrument's bars with indicator columns, a watchlist.

POST /chart/settings            JSON body: the chart document of
                                `marketdata.indicators_settings`, or some of
                                its sections (`indicators`, `candles`): the
                                others keep their saved values; answers the
                                saved (completed) document and its spec, or
                                400 `{"error": "indicators.rsi.period: ..."}`.
GET  /export/bars.csv?symbol=AAPL&timeframe=1h&start=…&end=…&indicators=…
                                `start`/`end` as the bars endpoint takes them
                                (ISO 8601 or epoch seconds; bars starting in
                                [start, end)); at most `EXPORT_MAX` bars.
GET  /watchlists/<id>/export.csv
Login required; someone else's watchlist is a 404.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import orjson
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from dashboard.exports import bars_csv, watchlist_csv
from marketdata.api import EARLIEST, BadParameter, bars_query_parse
from marketdata.indicators import indicator_series
from marketdata.indicators_settings import (
    chart_defaults,
    chart_settings_validate,
    chart_spec,
)
from marketdata.selectors import bars_resampled, instrument_get, watchlist_get_for_owner
from preferences.selectors import preferences_get
from preferences.services import preferences_update

EXPORT_MAX = 50_000  # bars per file: ~5 MB, a month of minutes of a 24/7 market


def chart_settings_of(user) -> dict:
    """The user's saved chart settings, complete; the defaults when none are
    saved or what is saved no longer validates (a renamed parameter)."""
    try:
        return chart_settings_validate(preferences_get(user=user).chart)
    except ValidationError:
        return chart_defaults()


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"ok": False, "error": message}, status=status)


def _csv(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def chart_settings_save(request):
    try:
        document = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return _error("body: malformed JSON")
    if isinstance(document, dict):
        # Each chart feature saves its own section; the others stay as saved.
        document = {**chart_settings_of(request.user), **document}
    try:
        preferences = preferences_update(user=request.user, chart=document)
    except ValidationError as exc:
        return _error(" ".join(exc.messages))
    return JsonResponse(
        {"ok": True, "chart": preferences.chart, "spec": chart_spec(preferences.chart)}
    )


def _stamp(ts: datetime) -> str:
    return ts.strftime("%Y%m%dT%H%MZ")


@login_required
@require_GET
def bars_export(request):
    params = request.GET
    try:
        query = bars_query_parse(params, allowed={"symbol"})
        symbol = (params.get("symbol") or "").strip().upper()
        if not symbol:
            raise BadParameter("symbol: required")
    except BadParameter as exc:
        return _error(str(exc))
    timeframe, start, end = query.timeframe, query.start, query.end
    spec, warmup = query.indicators, query.warmup
    instrument = instrument_get(symbol=symbol)
    if instrument is None:
        return _error(f"unknown instrument {symbol!r}", status=404)
    rows = bars_resampled(
        instrument=instrument,
        timeframe=timeframe,
        start=start,
        end=end,
        limit=EXPORT_MAX + 1,
    )
    if len(rows) > EXPORT_MAX:
        return _error(
            f"more than {EXPORT_MAX:,} {timeframe} bars in the range; "
            "narrow it or pick a longer timeframe"
        )
    indicators: dict = {}
    skip = 0
    if spec and rows:
        # Older bars warm the indicators up, as on the chart, so the file's
        # values equal the ones drawn.
        older = bars_resampled(
            instrument=instrument,
            timeframe=timeframe,
            start=EARLIEST,
            end=rows[0][0],
            limit=warmup,
            as_float=True,
        )
        skip = len(older)
        columns = [
            np.array(
                [float(r[i]) for r in older] + [float(r[i]) for r in rows],
                dtype=np.float64,
            )
            for i in range(1, 6)
        ]
        indicators = indicator_series(
            spec=spec,
            opens=columns[0],
            highs=columns[1],
            lows=columns[2],
            closes=columns[3],
            volumes=columns[4],
        )
    text = bars_csv(rows=rows, indicators=indicators, skip=skip)
    span = f"{_stamp(rows[0][0])}_{_stamp(rows[-1][0])}" if rows else "empty"
    filename = f"{instrument.symbol.replace('/', '-')}_{timeframe}_{span}.csv"
    return _csv(text, filename)


@login_required
@require_GET
def watchlist_export(request, pk: int):
    watchlist = watchlist_get_for_owner(owner=request.user, watchlist_id=pk)
    if watchlist is None:
        raise Http404("No such watchlist.")
    # Imported here: dashboard.views imports this module's settings helper.
    from dashboard.views import live_snapshots

    instruments = [
        item.instrument for item in watchlist.items.select_related("instrument")
    ]
    snapshots, _live = live_snapshots(instruments)
    text = watchlist_csv(entries=[(i, snapshots.get(i.symbol)) for i in instruments])
    name = slugify(watchlist.name) or f"watchlist-{watchlist.pk}"
    return _csv(text, f"{name}_{timezone.now():%Y%m%dT%H%MZ}.csv")
