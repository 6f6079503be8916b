from __future__ import annotations

from django.contrib import admin

from alerts.kinds import OPTIONAL_FIELDS, kind_fields
from alerts.models import AlertEvent, AlertRule, Delivery, DeliveryChannel
from alerts.services import alert_events_mark_seen, rules_changed
from audit.services import audit_queryset_update


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """Saves go through the model (validated by `AlertRule.clean`); the save
    and delete signals tell running engines (see `alerts.signals`)."""

    list_display = (
        "id",
        "owner",
        "instrument",
        "kind",
        "condition",
        "cooldown_seconds",
        "one_shot",
        "active",
        "notify_email",
        "last_fired_at",
    )
    list_filter = ("kind", "active", "one_shot", "notify_email", "timeframe")
    search_fields = ("instrument__symbol", "owner__username", "note", "conditions")
    autocomplete_fields = ("instrument",)
    raw_id_fields = ("owner",)
    readonly_fields = ("last_fired_at", "created_at", "updated_at")
    list_select_related = ("owner", "instrument")
    ordering = ("owner", "instrument__symbol", "id")
    actions = ("activate", "deactivate")
    fieldsets = (
        (None, {"fields": ("owner", "instrument", "kind", "direction", "active")}),
        (
            "Condition",
            {
                "fields": OPTIONAL_FIELDS,
                "description": "Only the fields the kind uses are kept; the rest "
                "are cleared. "
                + "; ".join(
                    f"{kind}: {', '.join(fields)}"
                    for kind, fields in kind_fields().items()
                )
                + ". Conditions (multi): a list of objects with kind, symbol, "
                "direction and that kind's fields.",
            },
        ),
        (
            "Delivery",
            {"fields": ("cooldown_seconds", "one_shot", "notify_email", "note")},
        ),
        ("History", {"fields": ("last_fired_at", "created_at", "updated_at")}),
    )

    @admin.display(description="Condition")
    def condition(self, obj: AlertRule) -> str:
        return obj.describe()

    @admin.action(description="Activate selected rules")
    def activate(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        count = audit_queryset_update(queryset=queryset, values={"active": True})
        rules_changed(rule_ids=ids)
        self.message_user(request, f"{count} rule(s) activated.")

    @admin.action(description="Deactivate selected rules")
    def deactivate(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        count = audit_queryset_update(queryset=queryset, values={"active": False})
        rules_changed(rule_ids=ids)
        self.message_user(request, f"{count} rule(s) deactivated.")

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)  # signals tell the engines


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = (
        "ts",
        "owner",
        "instrument",
        "kind",
        "message",
        "price",
        "seen_at",
        "emailed_at",
    )
    list_filter = ("kind", ("seen_at", admin.EmptyFieldListFilter))
    search_fields = ("instrument__symbol", "owner__username", "message")
    date_hierarchy = "ts"
    list_select_related = ("owner", "instrument")
    readonly_fields = (
        "owner",
        "rule",
        "instrument",
        "kind",
        "ts",
        "price",
        "values",
        "message",
        "note",
        "created_at",
        "emailed_at",
    )
    actions = ("mark_seen",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Mark selected alerts as seen")
    def mark_seen(self, request, queryset):
        count = 0
        for owner_id in set(queryset.values_list("owner_id", flat=True)):
            ids = queryset.filter(owner_id=owner_id).values_list("pk", flat=True)
            count += alert_events_mark_seen(user=owner_id, ids=list(ids))
        self.message_user(request, f"{count} alert(s) marked as seen.")


@admin.register(DeliveryChannel)
class DeliveryChannelAdmin(admin.ModelAdmin):
    """Owners manage their channels on their page; staff see state and
    failures here, never the URL or secret."""

    list_display = ("name", "owner", "kind", "enabled", "consecutive_failures")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)
    fields = (
        "owner",
        "name",
        "kind",
        "enabled",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "event", "channel", "status", "attempts")
    list_filter = ("status",)
    search_fields = ("owner__username", "last_error")
    list_select_related = ("owner", "event", "channel")
    readonly_fields = (
        "owner",
        "event",
        "channel",
        "parent",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False
