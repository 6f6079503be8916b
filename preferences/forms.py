"""The preferences page's form: what the page shows, turned into the model
fields `preferences.services.preferences_update` takes."""

from __future__ import annotations

from zoneinfo import available_timezones

from django import forms
from django.core.exceptions import ValidationError

from preferences.models import EXCHANGE, LOCAL, UTC, Landing, Preferences, Theme
from preferences.services import time_zone_validate

NAMED = "named"
ZONE_MODES = [
    (EXCHANGE, "Exchange time of each instrument (US equities New York, crypto UTC)"),
    (LOCAL, "This browser's time zone"),
    (UTC, "UTC"),
    (NAMED, "A named time zone"),
]


def zone_names() -> list[str]:
    """IANA names people pick from ("Europe/Berlin"), without the legacy
    aliases ("US/Eastern", "EST5EDT") that only duplicate them."""
    return sorted(
        z
        for z in available_timezones()
        if "/" in z
        and not z.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))
    )


def _unknown_zone(value: str) -> str:
    return (
        f"Unknown time zone “{value}”: choose one from the list, "
        "e.g. Europe/Berlin or America/Chicago."
    )


class PreferencesForm(forms.Form):
    zone_mode = forms.ChoiceField(
        label="Show times in", choices=ZONE_MODES, widget=forms.RadioSelect
    )
    zone_name = forms.CharField(label="Time zone", required=False, max_length=64)
    theme = forms.ChoiceField(
        label="Theme", choices=Theme.choices, widget=forms.RadioSelect
    )
    landing = forms.ChoiceField(label="Open the desk on")
    notify_toast = forms.BooleanField(label="Pop-up in the browser", required=False)
    notify_email = forms.BooleanField(
        label="Email (for rules that ask for one)", required=False
    )
    quiet_start = forms.TimeField(
        label="Quiet from",
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    quiet_end = forms.TimeField(
        label="until",
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    quiet_time_zone = forms.CharField(label="in", required=False, max_length=64)

    def __init__(self, *args, watchlists=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.watchlists = {w.pk: w for w in watchlists}
        self.fields["landing"].choices = [
            (Landing.DASHBOARD.value, "Watchlists (the first one)"),
            (Landing.PORTFOLIO.value, "Portfolio"),
            *[(f"w{w.pk}", f"Watchlist: {w.name}") for w in watchlists],
        ]

    @classmethod
    def initial_for(cls, preferences: Preferences) -> dict:
        zone = preferences.time_zone
        named = zone not in (EXCHANGE, LOCAL, UTC)
        landing = preferences.landing
        if landing == Landing.WATCHLIST and preferences.landing_watchlist_id:
            landing = f"w{preferences.landing_watchlist_id}"
        elif landing == Landing.WATCHLIST:
            landing = Landing.DASHBOARD.value
        return {
            "zone_mode": NAMED if named else zone,
            "zone_name": zone if named else "",
            "theme": preferences.theme,
            "landing": landing,
            "notify_toast": preferences.notify_toast,
            "notify_email": preferences.notify_email,
            "quiet_start": preferences.quiet_start,
            "quiet_end": preferences.quiet_end,
            "quiet_time_zone": preferences.quiet_time_zone,
        }

    def clean_zone_name(self) -> str:
        return self.cleaned_data.get("zone_name", "").strip()

    def clean_quiet_time_zone(self) -> str:
        value = self.cleaned_data.get("quiet_time_zone", "").strip()
        if not value:
            return ""
        try:
            zone = time_zone_validate(value)
        except ValidationError:
            raise ValidationError(_unknown_zone(value), code="time_zone") from None
        if zone in (EXCHANGE, LOCAL):
            raise ValidationError(_unknown_zone(value), code="time_zone")
        return zone

    def clean(self):
        data = super().clean()
        if data.get("zone_mode") == NAMED:
            name = data.get("zone_name", "")
            if not name:
                self.add_error("zone_name", "Choose a time zone from the list.")
            else:
                try:
                    time_zone_validate(name)
                except ValidationError:
                    self.add_error("zone_name", _unknown_zone(name))
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            self.add_error(
                "quiet_end", "Give quiet hours both a start and an end, or neither."
            )
        return data

    def model_fields(self) -> dict:
        data = self.cleaned_data
        mode = data["zone_mode"]
        landing = data["landing"]
        watchlist = None
        if landing.startswith("w"):
            watchlist = self.watchlists[int(landing[1:])]
            landing = Landing.WATCHLIST.value
        return {
            "time_zone": data["zone_name"] if mode == NAMED else mode,
            "theme": data["theme"],
            "landing": landing,
            "landing_watchlist": watchlist,
            "notify_toast": data["notify_toast"],
            "notify_email": data["notify_email"],
            "quiet_start": data["quiet_start"],
            "quiet_end": data["quiet_end"],
            "quiet_time_zone": data["quiet_time_zone"],
        }
