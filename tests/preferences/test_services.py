"""Preferences are made on first use and refuse what they cannot show."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from preferences.selectors import preferences_get
from preferences.services import preferences_update

pytestmark = pytest.mark.django_db


def test_defaults_on_first_use_then_saved_choices(user):
    preferences = preferences_get(user=user)
    assert (preferences.time_zone, preferences.theme) == ("exchange", "system")
    preferences_update(user=user, time_zone="Europe/Berlin", theme="dark")
    again = preferences_get(user=user)
    assert (again.time_zone, again.theme) == ("Europe/Berlin", "dark")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "utc+2"])
def test_unknown_time_zones_are_refused(user, zone):
    with pytest.raises(ValidationError):
        preferences_update(user=user, time_zone=zone)
    assert preferences_get(user=user).time_zone == "exchange"


def test_a_theme_outside_the_choices_is_refused(user):
    with pytest.raises(ValidationError):
        preferences_update(user=user, theme="neon")
