"""A user's own security events at /preferences/security/ (logins, failed
logins, logouts, password and token changes), newest first."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.selectors import security_events_for_user

PER_PAGE = 50


def display_zone(user) -> str:
    """The name of the user's display zone for these times. Events belong
    to no exchange, so "exchange" and "local" show UTC here (the page marks
    each time with its ISO instant for the browser to convert)."""
    from preferences.selectors import preferences_get

    name = preferences_get(user=user).time_zone
    if name in ("exchange", "local"):
        name = "UTC"
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return "UTC"
    return name


@login_required
@require_GET
def security_events(request):
    zone_name = display_zone(request.user)
    events = security_events_for_user(user=request.user)
    page = Paginator(events, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/security.html",
        {"page": page, "zone_name": zone_name},
    )
