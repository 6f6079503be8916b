"""Reads of a user's preferences, and what they mean for an alert's delivery."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from preferences.models import EXCHANGE, LOCAL, Preferences

# Quiet hours with neither their own zone nor a named display zone.
QUIET_FALLBACK_ZONE = "America/New_York"


def preferences_get(*, user) -> Preferences:
    """The user's preferences, made with the defaults on first use."""
    preferences, _ = Preferences.objects.get_or_create(user=user)
    return preferences


@dataclass(frozen=True)
class Delivery:
    """How a fired alert reaches its owner now: a browser toast, an email,
    and whether quiet hours are what held them back."""

    toast: bool = True
    email: bool = True
    quiet: bool = False


def quiet_zone(preferences: Preferences) -> str:
    if preferences.quiet_time_zone:
        return preferences.quiet_time_zone
    if preferences.time_zone not in (EXCHANGE, LOCAL, ""):
        return preferences.time_zone
    return QUIET_FALLBACK_ZONE


def in_quiet_hours(preferences: Preferences, *, at: datetime) -> bool:
    """Whether `at` (aware) falls in [quiet_start, quiet_end) of the
    preferences' quiet zone; an end before the start spans midnight."""
    start, end = preferences.quiet_start, preferences.quiet_end
    if start is None or end is None or start == end:
        return False
    now: time = at.astimezone(ZoneInfo(quiet_zone(preferences))).time()
    if start < end:
        return start <= now < end
    return now >= start or now < end


def delivery_for(*, user_ids: Iterable[int], at: datetime) -> dict[int, Delivery]:
    """Each user's `Delivery` at `at`; users who never saved preferences get
    the defaults (toast and email, no quiet hours). One query; no rows made."""
    user_ids = set(user_ids)
    result = {user_id: Delivery() for user_id in user_ids}
    for preferences in Preferences.objects.filter(user_id__in=user_ids):
        quiet = in_quiet_hours(preferences, at=at)
        result[preferences.user_id] = Delivery(
            toast=preferences.notify_toast and not quiet,
            email=preferences.notify_email and not quiet,
            quiet=quiet,
        )
    return result


def email_wanted(*, user_id: int) -> bool:
    """Whether the user wants alert emails at all (defaults: yes)."""
    return not Preferences.objects.filter(user_id=user_id, notify_email=False).exists()
