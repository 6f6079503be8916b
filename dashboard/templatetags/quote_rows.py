"""`{% quote_rows rows watchlist=… %}`: watchlist rows as HTML
(`dashboard.quote_html`), with the request's CSRF token and the user's
display zone taken from the template context."""

from __future__ import annotations

from django import template

from dashboard.quote_html import quote_rows_html

register = template.Library()


@register.simple_tag(takes_context=True)
def quote_rows(context, rows, watchlist=None):
    return quote_rows_html(
        rows,
        request=context.get("request"),
        watchlist=watchlist,
        preference=context.get("display_time_zone"),
    )
