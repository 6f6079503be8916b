from __future__ import annotations

from django.contrib import admin

from preferences.models import Preferences


@admin.register(Preferences)
class PreferencesAdmin(admin.ModelAdmin):
    list_display = ("user", "time_zone", "theme", "landing", "updated_at")
    search_fields = ("user__username",)
    raw_id_fields = ("user", "landing_watchlist")
