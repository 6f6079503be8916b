"""What every page's base template needs from the user's preferences: the
theme (on `<html data-theme>`) and the display zone, handed to
`static/js/format.js` as a small JSON blob (`display_prefs`)."""

from __future__ import annotations


def display(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from preferences.selectors import preferences_get

    preferences = preferences_get(user=user)
    return {
        "theme": preferences.theme,
        "display_time_zone": preferences.time_zone,
        "display_prefs": {
            "zone": preferences.time_zone,
            "theme": preferences.theme,
            "toast": preferences.notify_toast,
        },
    }
