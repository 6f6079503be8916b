"""`{% show_time value instrument=… fmt="time" %}`: a time in the user's
display zone, naming it, as a `<time>` element `static/js/format.js`
rewrites in the browser (so `local` becomes the browser's zone)."""

from __future__ import annotations

from django import template

from preferences.display import time_html

register = template.Library()


@register.simple_tag(takes_context=True)
def show_time(context, value, instrument=None, fmt: str = "datetime") -> str:
    return time_html(
        value,
        instrument=instrument,
        fmt=fmt,
        preference=context.get("display_time_zone"),
    )
