"""Watchlist rows as HTML, built in Python rather than by a template include.

The dashboard's first render draws every row of the watchlist. As one
`{% include %}` per row, Django's template engine spent ~0.6 ms of CPU on
each (about 56 variable lookups, two `{% url %}`, a `{% csrf_token %}`): 30
of `GET /`'s 55 ms CPU with 50 rows (`python -m bench.bench_dashboard`). One
`str.format` per row costs a fifth of that. Every value is escaped
(`html.escape`, the same five characters as Django's `escape`); the markup is the contract `static/js/quotes.js` and the
browser tests read (`data-*` on the row, `data-f` on each live cell).

`{% quote_rows rows watchlist=… %}` (`dashboard.templatetags.quote_rows`)
renders them in templates; the view that adds a row renders the same tag.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify

from preferences.display import time_html

SKELETON = '<span class="skel"></span>'
LIVE_CELLS = (
    # (class, data-f, QuoteRow attribute, coloured by direction)
    ("c-last", "last", "last", False),
    ("c-chg", "change", "change", True),
    ("c-pct", "change_pct", "change_pct", True),
    ("c-bid", "bid", "bid", False),
    ("c-ask", "ask", "ask", False),
    ("c-spread", "spread", "spread", False),
    ("c-high", "high", "high", False),
    ("c-low", "low", "low", False),
    ("c-vol", "volume", "volume", False),
)

ROW = (
    '<tr data-symbol="{symbol}" data-tz-exchange="{zone}" data-decimals="{decimals}"'
    ' data-seq="{seq}" data-received-at="{received_at}" data-freshness="{freshness}"'
    ' data-minute-ts="{minute_ts}" data-spark="{spark_data}"'
    ' class="quote{nodata}" draggable="true">\n'
    '  <th scope="row" class="c-sym"><span class="grip" aria-hidden="true">⋮⋮</span>'
    '<a href="{href}">{symbol}</a></th>\n'
    '  <td class="c-name">{name}</td>\n'
    "{cells}"
    '  <td class="c-spark"><svg class="spark {direction}" viewBox="0 0 100 24"'
    ' preserveAspectRatio="none" width="100" height="24" role="img"'
    ' aria-label="{symbol} session price line"><polyline points="{spark_points}"/>'
    "</svg></td>\n"
    '  <td class="c-age"><span class="fresh" data-state="{freshness}">'
    '{freshness_label}</span> <span class="age" data-f="age">{age}</span>'
    '<span data-f="updated">{updated}</span></td>\n'
    '  <td class="c-act">{actions}</td>\n'
    "</tr>"
)
CELL = '  <td class="num {cls}{tone}" data-f="{field}">{value}</td>\n'
ACTIONS = (
    '<span class="row-buttons">\n'
    '    <button type="button" class="icon" data-move="-1"'
    ' aria-label="Move {symbol} up">↑</button><button type="button" class="icon"'
    ' data-move="1" aria-label="Move {symbol} down">↓</button>\n'
    '    <form method="post" action="{remove_url}" class="inline js-remove">'
    '<input type="hidden" name="csrfmiddlewaretoken" value="{csrf}">'
    '<input type="hidden" name="symbol" value="{symbol}"><button type="submit"'
    ' class="icon danger" aria-label="Remove {symbol} from {watchlist}">✕</button>'
    "</form></span>\n"
    '    <span class="row-menu"><button type="button" class="icon row-menu-toggle"'
    ' aria-haspopup="menu" aria-expanded="false" aria-controls="row-menu-{slug}"'
    ' aria-label="Actions for {symbol}">⋯</button><ul class="menu" role="menu"'
    ' id="row-menu-{slug}" aria-label="Actions for {symbol}" hidden>\n'
    '      <li role="none"><button type="button" role="menuitem" tabindex="-1"'
    ' data-move="-1">Move up</button></li>\n'
    '      <li role="none"><button type="button" role="menuitem" tabindex="-1"'
    ' data-move="1">Move down</button></li>\n'
    '      <li role="none"><button type="button" role="menuitem" tabindex="-1"'
    ' class="danger" data-remove>Remove from {watchlist}</button></li>\n'
    "    </ul></span>\n  "
)


def quote_rows_html(
    rows: Iterable, *, request, watchlist=None, preference: str | None = None
) -> SafeString:
    """The `<tr>` of every `dashboard.quotes.QuoteRow`, in order. With a
    `watchlist`, each row has the move and remove buttons; `preference` is the
    user's display zone (`preferences.models`), for the "updated" time."""
    remove_url = csrf = ""
    if watchlist is not None:
        remove_url = reverse("dashboard:item_remove", args=[watchlist.pk])
        csrf = get_token(request)
    return mark_safe(
        "\n".join(_row(row, watchlist, remove_url, csrf, preference) for row in rows)
    )


def _row(row, watchlist, remove_url: str, csrf: str, preference) -> str:
    symbol = escape(row.symbol)
    has_data = bool(row.snapshot)
    direction = escape(row.direction)
    cells = "".join(
        CELL.format(
            cls=cls,
            tone=f" {direction}" if toned else "",
            field=field,
            value=escape(getattr(row, attribute)) if has_data else SKELETON,
        )
        for cls, field, attribute, toned in LIVE_CELLS
    )
    actions = ""
    if watchlist is not None:
        actions = ACTIONS.format(
            symbol=symbol,
            remove_url=escape(remove_url),
            csrf=escape(csrf),
            watchlist=escape(watchlist.name),
            slug=escape(slugify(row.symbol)),
        )
    updated = row.updated_at
    return ROW.format(
        symbol=symbol,
        zone=escape(row.exchange_zone),
        decimals=row.decimals,
        seq=row.seq,
        received_at=row.received_at,
        freshness=escape(row.freshness),
        minute_ts=escape(row.minute_ts),
        spark_data=escape(row.spark_data),
        nodata="" if has_data else " nodata",
        href=escape(reverse("dashboard:instrument", args=[row.symbol])),
        name=escape(row.instrument.name),
        cells=cells,
        direction=direction,
        spark_points=escape(row.spark_points),
        freshness_label=escape(row.freshness_label),
        age=escape(row.age),
        updated=time_html(
            updated, instrument=row.instrument, fmt="time", preference=preference
        )
        if updated
        else "",
        actions=actions,
    )
