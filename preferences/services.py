"""Writes of a user's preferences, validated."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError

from marketdata.indicators_settings import chart_settings_validate
from preferences.models import EXCHANGE, LOCAL, UTC, Preferences
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
    for name, value in fields.items():
        setattr(preferences, name, value)
    preferences.full_clean(exclude=["user"])
    preferences.save(update_fields=[*fields, "updated_at"])
    return preferences
