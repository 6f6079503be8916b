"""Refuse HTTP input PostgreSQL cannot store before any view sees it (and
drop such cookies from WebSocket handshakes).

The path and the query string (names and values) reach lookups in many views
(search, symbols, filters, admin search), so they are checked once here: a
400 with a JSON `{"error": ...}` for API and `Accept: application/json`
callers, a short HTML page otherwise. Form bodies are left to the forms,
whose fields refuse such characters with a validation error shown on the
form (see `core.storable`). A cookie holding them is dropped (the request goes
on as if it were absent) rather than refused: a 400 on every page would lock
the browser out until its cookies were cleared.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import format_html

from core.storable import unstorable_reason

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bad request · Tapeline</title>
</head><body><h1>Bad request (400)</h1><p>{}</p></body></html>
"""


def _problem(request: HttpRequest) -> str | None:
    reason = unstorable_reason(request.path)
    if reason:
        return f"The address contains {reason}"
    for name, values in request.GET.lists():
        reason = unstorable_reason(name)
        if reason:
            return f"A query parameter name contains {reason}"
        reason = unstorable_reason(values)
        if reason:
            return f"The query parameter {name!r} contains {reason}"
    return None


def storable_cookies(cookies: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in cookies.items() if not unstorable_reason([k, v])}


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in (
        request.headers.get("Accept", "")
    )


class UnstorableInputMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.COOKIES = storable_cookies(request.COOKIES)
        problem = _problem(request)
        if problem is None:
            return self.get_response(request)
        message = f"{problem}, which Tapeline cannot store. Remove it and try again."
        if _wants_json(request):
            return JsonResponse({"error": message}, status=400)
        return HttpResponse(format_html(PAGE, message), status=400)


class StorableCookiesMiddleware:
    """ASGI, for WebSockets: the cookie rule above, between Channels'
    `CookieMiddleware` (which parses them) and `SessionMiddleware`."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        cookies = scope.get("cookies") or {}
        kept = storable_cookies(cookies)
        if len(kept) != len(cookies):
            scope = {**scope, "cookies": kept}
        return await self.inner(scope, receive, send)
