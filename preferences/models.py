"""A user's saved choices: how times are shown, the theme, where the desk
opens, how alerts reach them, and the chart's indicators. One row per user,
made on first use (`preferences.selectors.preferences_get`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# Display time zones besides a named IANA zone (e.g. "Europe/Berlin").
EXCHANGE = "exchange"  # each instrument's exchange time (crypto: UTC)
LOCAL = "local"  # the browser's zone
UTC = "UTC"


class Theme(models.TextChoices):
    SYSTEM = "system", "System"
    LIGHT = "light", "Light"
    DARK = "dark", "Dark"


class Landing(models.TextChoices):
    DASHBOARD = "dashboard", "Dashboard (first watchlist)"
    WATCHLIST = "watchlist", "A chosen watchlist"
    PORTFOLIO = "portfolio", "Portfolio"


class Preferences(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    time_zone = models.CharField(max_length=64, default=EXCHANGE)
    theme = models.CharField(max_length=8, choices=Theme.choices, default=Theme.SYSTEM)
    landing = models.CharField(
        max_length=12, choices=Landing.choices, default=Landing.DASHBOARD
    )
    landing_watchlist = models.ForeignKey(
        "marketdata.Watchlist", null=True, blank=True, on_delete=models.SET_NULL
    )
    notify_toast = models.BooleanField(default=True)
    notify_email = models.BooleanField(default=True)
    # Quiet hours: no toasts or emails in [start, end) (end before start
    # spans midnight); alerts are still recorded. Read in `quiet_time_zone`
    # (the page fills in the browser's zone), else the display zone when it
    # names one, else New York (`preferences.selectors.quiet_zone`).
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    quiet_time_zone = models.CharField(max_length=64, blank=True, default="")
    # The instrument chart's indicators and their parameters, as the page
    # sends them (validated by `preferences.services`).
    chart = models.JSONField(default=dict, blank=True)
    onboarded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"preferences of {self.user}"
