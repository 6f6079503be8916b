"""Puts each request's `AuditContext` (source, IP, user agent, the request
for its user) in place for everything the view does; see `audit.context`.
Placed after AuthenticationMiddleware in settings.MIDDLEWARE."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from audit.context import context_for_request, context_pop, context_push


class AuditContextMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        token = context_push(context_for_request(request))
        try:
            return self.get_response(request)
        finally:
            context_pop(token)

    async def _acall(self, request):
        token = context_push(context_for_request(request))
        try:
            return await self.get_response(request)
        finally:
            context_pop(token)
