"""Staff browse the audit log: filters by actor, action, object type, source
and date; search by username, object, IP. Read-only: nobody adds, changes or
deletes an event here (the model and a trigger refuse it anyway)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from audit.models import AuditEvent
from audit.registry import AUDITED


class ObjectTypeFilter(admin.SimpleListFilter):
    title = "object type"
    parameter_name = "object_type"

    def lookups(self, request, model_admin):
        labels = sorted({entry.label for entry in AUDITED})
        return [(label, label) for label in labels]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(object_type=self.value())
        return queryset


def _pretty(value) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html("<pre style='margin:0'>{}</pre>", text)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "at",
        "source",
        "action",
        "actor_username",
        "object_type",
        "object_repr",
        "changes",
        "ip",
    )
    list_filter = (
        "action",
        "source",
        ObjectTypeFilter,
        ("actor", admin.RelatedOnlyFieldListFilter),
        ("at", admin.DateFieldListFilter),
    )
    search_fields = ("actor_username", "object_repr", "object_id", "=ip")
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False  # a count(*) of a large log on every page
    fields = (
        "at",
        "source",
        "action",
        "actor",
        "actor_username",
        "subject",
        "object_type",
        "object_id",
        "object_repr",
        "before_pretty",
        "after_pretty",
        "ip",
        "user_agent",
    )
    readonly_fields = fields

    @admin.display(description="Changed fields")
    def changes(self, obj: AuditEvent) -> str:
        names = sorted(set(obj.before or {}) | set(obj.after or {}))
        if len(names) > 6:
            names = [*names[:6], "…"]
        return ", ".join(names)

    @admin.display(description="Before")
    def before_pretty(self, obj: AuditEvent) -> str:
        return _pretty(obj.before)

    @admin.display(description="After")
    def after_pretty(self, obj: AuditEvent) -> str:
        return _pretty(obj.after)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
