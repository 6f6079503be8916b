"""Dashboard pages and the small JSON endpoints behind their controls.

Views only parse input, call selectors/services of the other apps and render.
Every endpoint requires login and only ever touches the requesting user's
watchlists and positions (someone else's id is a 404).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.storable import UNSTORABLE_CODES
from dashboard.chart_views import chart_settings_of
from dashboard.context_processors import live_page
from dashboard.forms import OrderForm, SymbolForm, WatchlistNameForm
from dashboard.market_hours import instrument_hours, market_clock, market_note
from dashboard.quotes import (
    QuoteRow,
    stored_snapshot,
)
from marketdata import services
from marketdata.indicators_settings import (
    chart_controls,
    chart_layer_controls,
    chart_spec,
)
from marketdata.models import Watchlist
from marketdata.rollups import STEPS
from marketdata.selectors import (
    bars_last_close,
    instrument_get,
    instruments_search,
    watchlist_get_for_owner,
    watchlists_for_user,
)
from marketdata.sparklines import sparklines_get
from preferences.models import Landing
from preferences.selectors import preferences_get
from streaming.snapshots import snapshots_get_safe

# The chart's timeframe buttons and each bar's length in seconds (the
# instrument page's scripts read it from the buttons).
TIMEFRAMES = {name: int(step.total_seconds()) for name, step in STEPS.items()}


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _page_context(request) -> dict:
    """The live-page context (also added to every template by
    `dashboard.context_processors.live_page`); the alert views use it."""
    return live_page(request)


def live_snapshots(instruments) -> tuple[dict[str, dict], bool]:
    """Snapshots by symbol and whether they are live: when Redis is out of
    reach, documents built from the newest stored minute bars instead."""
    instruments = list(instruments)
    snapshots = snapshots_get_safe(symbols=[i.symbol for i in instruments])
    if snapshots is not None:
        return snapshots, True
    stored = bars_last_close(instrument_ids=[i.pk for i in instruments])
    snapshots = {}
    for instrument in instruments:
        if instrument.pk in stored:
            ts, close = stored[instrument.pk]
            snapshots[instrument.symbol] = stored_snapshot(
                symbol=instrument.symbol, ts=ts, close=close
            )
    return snapshots, False


def quote_rows(instruments, *, sparklines: bool = True) -> tuple[list[QuoteRow], bool]:
    """Rows of a quote table, and whether their prices are live."""
    instruments = list(instruments)
    snapshots, live = live_snapshots(instruments)
    lines = sparklines_get(instruments=instruments) if sparklines else {}
    rows = [
        QuoteRow(
            instrument=i,
            snapshot=snapshots.get(i.symbol),
            sparkline=lines.get(i.symbol, {}),
        )
        for i in instruments
    ]
    return rows, live


@login_required
@require_GET
def index(request):
    watchlists = list(watchlists_for_user(user=request.user))
    active = None
    wanted = request.GET.get("list")
    if wanted and wanted.isdigit():
        active = next((w for w in watchlists if w.pk == int(wanted)), None)
        if active is None:
            raise Http404("No such watchlist.")
    if active is None and not request.GET:
        # A bare "/" (after login, the brand link) opens the chosen landing
        # view; the nav's "Watchlists" link adds ?view=watchlists to stay.
        preferences = preferences_get(user=request.user)
        if preferences.landing == Landing.PORTFOLIO:
            return redirect("dashboard:portfolio")
        if preferences.landing == Landing.WATCHLIST:
            wanted_id = preferences.landing_watchlist_id
            active = next((w for w in watchlists if w.pk == wanted_id), None)
    if active is None and watchlists:
        active = watchlists[0]
    rows, live = [], True
    if active is not None:
        rows, live = quote_rows(item.instrument for item in active.items.all())
        services.instruments_viewed(instrument_ids=[r.instrument.id for r in rows])
    return render(
        request,
        "dashboard/index.html",
        {
            "watchlists": watchlists,
            "active": active,
            "rows": rows,
            "symbols": [row.symbol for row in rows],
            "market_note": market_note(*market_clock()),
            **({} if live else {"live_unavailable": True}),
        },
    )


@login_required
@require_GET
def instrument_detail(request, symbol: str):
    instrument = instrument_get(symbol=symbol.upper())
    if instrument is None:
        raise Http404("No such instrument.")
    (row,), live = quote_rows([instrument], sparklines=False)
    services.instruments_viewed(instrument_ids=[instrument.id])
    timeframe = request.GET.get("tf", "1m")
    if timeframe not in TIMEFRAMES:
        timeframe = "1m"
    watchlists = list(watchlists_for_user(user=request.user))
    chart = chart_settings_of(request.user)
    return render(
        request,
        "dashboard/instrument.html",
        {
            "instrument": instrument,
            "indicator_controls": chart_controls(chart),
            "layer_controls": chart_layer_controls(chart),
            "indicator_spec": chart_spec(chart),
            "candles_on": chart["candles"]["on"],
            "patterns_on": chart["patterns"]["on"],
            "row": row,
            "market": instrument_hours(instrument.asset_class, market_clock()[0]),
            "timeframes": TIMEFRAMES.items(),
            "timeframe": timeframe,
            "watchlists": watchlists,
            "in_lists": {
                w.pk
                for w in watchlists
                for item in w.items.all()
                if item.instrument_id == instrument.pk
            },
            **({} if live else {"live_unavailable": True}),
        },
    )


@login_required
@require_GET
def search(request):
    query = request.GET.get("q", "")[:40]
    results = instruments_search(query=query, limit=12)
    return JsonResponse(
        {
            "query": query,
            "results": [
                {
                    "symbol": i.symbol,
                    "name": i.name,
                    "exchange": i.exchange,
                    "asset_class": i.asset_class,
                    "url": reverse("dashboard:instrument", args=[i.symbol]),
                }
                for i in results
            ],
        }
    )


# --- watchlist editing ---------------------------------------------------------
def _done(request, *, watchlist_id=None, status=200, **payload):
    """JSON for the page's fetch calls; a redirect (and a message) for plain forms."""
    if _wants_json(request):
        return JsonResponse({"ok": status < 400, **payload}, status=status)
    if status >= 400 and payload.get("error"):
        messages.error(request, payload["error"])
    url = reverse("dashboard:index")
    if watchlist_id:
        url += f"?list={watchlist_id}"
    return redirect(url)


def _error(request, exc: ValidationError, watchlist_id=None):
    return _done(
        request, watchlist_id=watchlist_id, status=400, error=" ".join(exc.messages)
    )


def _form_error(request, form, fallback: str, watchlist_id=None):
    """`fallback` says what to send; a value that cannot be stored at all (a
    NUL) gets the form's own message instead, which names the problem."""
    for errors in form.errors.as_data().values():
        for error in errors:
            if error.code in UNSTORABLE_CODES:
                return _error(request, error, watchlist_id)
    return _error(request, ValidationError(fallback), watchlist_id)


def _owned(request, pk: int) -> Watchlist:
    watchlist = watchlist_get_for_owner(owner=request.user, watchlist_id=pk)
    if watchlist is None:
        raise Http404("No such watchlist.")
    return watchlist


@login_required
@require_POST
def watchlist_create(request):
    form = WatchlistNameForm(request.POST)
    if not form.is_valid():
        return _form_error(request, form, "Give the watchlist a name.")
    try:
        watchlist = services.watchlist_create_checked(
            owner=request.user, name=form.cleaned_data["name"]
        )
    except ValidationError as exc:
        return _error(request, exc)
    return _done(
        request, watchlist_id=watchlist.pk, id=watchlist.pk, name=watchlist.name
    )


@login_required
@require_POST
def watchlist_rename(request, pk: int):
    _owned(request, pk)
    form = WatchlistNameForm(request.POST)
    if not form.is_valid():
        return _form_error(request, form, "Give the watchlist a name.", pk)
    try:
        watchlist = services.watchlist_rename(
            owner=request.user, watchlist_id=pk, name=form.cleaned_data["name"]
        )
    except ValidationError as exc:
        return _error(request, exc, pk)
    return _done(request, watchlist_id=pk, id=pk, name=watchlist.name)


@login_required
@require_POST
def watchlist_delete(request, pk: int):
    _owned(request, pk)
    services.watchlist_delete(owner=request.user, watchlist_id=pk)
    return _done(request, id=pk)


@login_required
@require_POST
def watchlist_reorder(request):
    form = OrderForm(request.POST, kind=int)
    if not form.is_valid():
        return _form_error(request, form, "Send the watchlist ids in order.")
    services.watchlist_reorder(
        owner=request.user, watchlist_ids=form.cleaned_data["order"]
    )
    return _done(request)


@login_required
@require_POST
def item_add(request, pk: int):
    watchlist = _owned(request, pk)
    form = SymbolForm(request.POST)
    if not form.is_valid():
        return _form_error(request, form, "Choose an instrument.", pk)
    try:
        item = services.watchlist_item_add(
            owner=request.user, watchlist_id=pk, symbol=form.cleaned_data["symbol"]
        )
    except ValidationError as exc:
        return _error(request, exc, pk)
    (row,), _live = quote_rows([item.instrument])
    html = render_to_string(
        "dashboard/_quote_rows.html",
        {"rows": [row], "watchlist": watchlist},
        request=request,
    )
    return _done(request, watchlist_id=pk, symbol=item.instrument.symbol, row_html=html)


@login_required
@require_POST
def item_remove(request, pk: int):
    _owned(request, pk)
    form = SymbolForm(request.POST)
    if not form.is_valid():
        return _form_error(request, form, "Choose an instrument.", pk)
    removed = services.watchlist_item_remove(
        owner=request.user, watchlist_id=pk, symbol=form.cleaned_data["symbol"]
    )
    if not removed:
        return _error(
            request, ValidationError("That instrument is not in the list."), pk
        )
    return _done(request, watchlist_id=pk, symbol=form.cleaned_data["symbol"])


@login_required
@require_POST
def item_reorder(request, pk: int):
    _owned(request, pk)
    form = OrderForm(request.POST, kind=str)
    if not form.is_valid():
        return _form_error(request, form, "Send the symbols in order.", pk)
    services.watchlist_item_reorder(
        owner=request.user, watchlist_id=pk, symbols=form.cleaned_data["order"]
    )
    return _done(request, watchlist_id=pk)
