"""Reads of the accounts app."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

from django.urls import reverse

from accounts.models import Invite
from marketdata.models import Watchlist
from preferences.selectors import preferences_get


def onboarding_due(*, user) -> bool:
    """Onboarding follows the first log-in of someone who has not been through
    it (or skipped it) and has nothing set up yet. Staff are operators whose
    first stop is admin, and an account given watchlists by an administrator
    or `demo_setup` is set up already."""
    if not user.is_authenticated or user.is_staff:
        return False
    if preferences_get(user=user).onboarded_at is not None:
        return False
    return not Watchlist.objects.filter(owner=user).exists()


def watchlist_names(*, user) -> list[str]:
    return list(Watchlist.objects.filter(owner=user).values_list("name", flat=True))


def invites_recent(*, limit: int = 100) -> list[Invite]:
    return list(Invite.objects.select_related("created_by", "used_by")[:limit])


def invite_link(*, invite: Invite, request) -> str:
    return request.build_absolute_uri(reverse("accounts:invite", args=[invite.token]))


@lru_cache(maxsize=1)
def time_zone_names() -> list[str]:
    return sorted(name for name in available_timezones() if "/" in name)
