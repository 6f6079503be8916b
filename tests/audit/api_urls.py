"""URLs for tests/audit/test_sources.py: the project's, plus two endpoints
under /api/ that authenticate the way the token API does (a credential that
is not a session, then `audit_actor_set`), one sync and one async."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from audit.context import audit_actor_set
from core.urls import urlpatterns as project
from marketdata.services import watchlist_create_checked


def _user(request):
    # Stands in for token lookup: the header names the token's owner.
    name = request.headers.get("X-Token-Owner", "")
    return get_user_model().objects.filter(username=name).first()


@csrf_exempt
def create_sync(request):
    user = _user(request)
    if user is None:
        return HttpResponse(status=401)
    audit_actor_set(user=user)
    watchlist = watchlist_create_checked(owner=user, name=request.POST["name"])
    return JsonResponse({"id": watchlist.pk})


@csrf_exempt
async def create_async(request):
    user = await sync_to_async(_user)(request)
    if user is None:
        return HttpResponse(status=401)
    audit_actor_set(user=user)
    watchlist = await sync_to_async(watchlist_create_checked)(
        owner=user, name=request.POST["name"]
    )
    return JsonResponse({"id": watchlist.pk})


urlpatterns = [
    path("api/test-audit/sync", create_sync),
    path("api/test-audit/async", create_async),
    path("dash-async/watchlists", create_async),
    *project,
]
