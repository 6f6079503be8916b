"""Writes of a user's preferences, validated."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError

from marketdata.indicators_settings import chart_settings_validate
from preferences.models import EXCHANGE, LOCAL, UTC, Landing, Preferences
from preferences.selectors import preferences_get


def time_zone_validate(value: str) -> str:
    """`exchange`, `local`, `UTC` or an IANA zone name; else ValidationError."""
    value = (value or "").strip()
    if value in (EXCHANGE, LOCAL, UTC):
        return value
    if value in available_timezones():
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return value
    raise ValidationError(f"unknown time zone {value!r}", code="time_zone")


def preferences_update(*, user, **fields) -> Preferences:
    """Set the given fields (model field names) and save them; the time zone
    and the chart's indicators are validated, other fields by the model's
    choices."""
    preferences = preferences_get(user=user)
    if "time_zone" in fields:
        fields["time_zone"] = time_zone_validate(fields["time_zone"])
    if "chart" in fields:
        fields["chart"] = chart_settings_validate(fields["chart"])
    if fields.get("quiet_time_zone"):
        zone = time_zone_validate(fields["quiet_time_zone"])
        if zone in (EXCHANGE, LOCAL):
            raise ValidationError(
                "quiet hours need a named time zone, e.g. Europe/Berlin",
                code="time_zone",
            )
        fields["quiet_time_zone"] = zone
    for name, value in fields.items():
        setattr(preferences, name, value)
    if (preferences.quiet_start is None) != (preferences.quiet_end is None):
        raise ValidationError(
            "quiet hours need both a start and an end", code="quiet_hours"
        )
    watchlist = preferences.landing_watchlist
    if watchlist is not None and watchlist.owner_id != user.pk:
        raise ValidationError("no such watchlist", code="landing")
    # Checked only when the landing is being set: a deleted watchlist (the
    # key goes null) must not block saving the theme; the dashboard falls
    # back to the first watchlist then.
    landing_set = "landing" in fields or "landing_watchlist" in fields
    if landing_set and preferences.landing == Landing.WATCHLIST and watchlist is None:
        raise ValidationError("choose the watchlist to open", code="landing")
    preferences.full_clean(exclude=["user"])
    preferences.save(update_fields=[*fields, "updated_at"])
    return preferences
