"""A user's own security events at /preferences/security/ (logins, failed
logins, logouts, password and token changes), newest first. Times follow
the user's display zone like every other page (`{% show_time %}`: events
belong to no exchange, so "exchange" is the desk's market clock and "local"
the browser's, rewritten by static/js/format.js)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit.selectors import security_events_for_user

PER_PAGE = 50


@login_required
@require_GET
def security_events(request):
    events = security_events_for_user(user=request.user)
    page = Paginator(events, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "audit/security.html", {"page": page})
