"""`{% show_time value instrument=… fmt="time" %}`: a time in the user's
display zone, naming it, as a `<time>` element `static/js/format.js`
rewrites in the browser (so `local` becomes the browser's zone)."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.html import format_html

from preferences.display import FORMATS, exchange_zone, fmt_time, zone_for

register = template.Library()


@register.simple_tag(takes_context=True)
def show_time(context, value, instrument=None, fmt: str = "datetime") -> str:
    if not isinstance(value, datetime):
        return "—"
    if fmt not in FORMATS:
        fmt = "datetime"
    preference = context.get("display_time_zone") or "exchange"
    zone = zone_for(preference=preference, instrument=instrument)
    return format_html(
        '<time datetime="{}" data-tz-exchange="{}" data-fmt="{}">{}</time>',
        value.isoformat(),
        exchange_zone(instrument),
        fmt,
        fmt_time(value, zone=zone, fmt=fmt),
    )
