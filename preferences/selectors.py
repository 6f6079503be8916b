"""Reads of a user's preferences."""

from __future__ import annotations

from preferences.models import Preferences


def preferences_get(*, user) -> Preferences:
    """The user's preferences, made with the defaults on first use."""
    preferences, _ = Preferences.objects.get_or_create(user=user)
    return preferences
