"""What every signed-in page's base template needs: the live socket's path,
the stale threshold, the alerts link with its unseen count, and whether the
live feed store (Redis) is known to be out of reach (a page that read live
data says so itself: its `live_unavailable` wins over this one)."""

from __future__ import annotations

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject

from core.redis import redis_reachable


def _alerts_url() -> str | None:
    try:
        return reverse("dashboard:alerts")
    except NoReverseMatch:
        return None


def _unseen(user) -> int:
    from alerts.selectors import events_unseen_count

    return events_unseen_count(user=user)


def live_page(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    alerts_url = _alerts_url()
    return {
        "ws_path": "/ws/market/",
        "stale_after": settings.STREAM_STALE_AFTER,
        "alerts_url": alerts_url,
        # Evaluated only when a template shows it (not on admin pages).
        "alerts_unseen": SimpleLazyObject(lambda: _unseen(user)) if alerts_url else 0,
        "live_unavailable": not redis_reachable(),
    }
