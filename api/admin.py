from __future__ import annotations

from django.contrib import admin

from api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "user",
        "scope",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("scope",)
    search_fields = ("name", "prefix", "user__username")
    # Staff see and revoke tokens; they never make them here (no secret to show).
    readonly_fields = ("user", "prefix", "secret_hash", "created_at", "last_used_at")
    fields = (
        "user",
        "name",
        "scope",
        "prefix",
        "secret_hash",
        "created_at",
        "last_used_at",
        "revoked_at",
    )

    def has_add_permission(self, request) -> bool:
        return False
