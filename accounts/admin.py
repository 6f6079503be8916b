from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from accounts import services
from accounts.forms import AdminLoginForm
from accounts.models import Invite, SignUp

# Admin's log-in page is throttled like the desk's.
admin.site.login_form = AdminLoginForm


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ("short_token", "email", "note", "created_by", "expires_at", "state")
    list_filter = ("created_at",)
    search_fields = ("email", "note", "token")
    readonly_fields = ("link", "created_by", "used_at", "used_by", "revoked_at")
    fields = ("email", "note", "expires_at", *readonly_fields)
    actions = ["revoke"]

    def get_changeform_initial_data(self, request):
        from datetime import timedelta

        from django.conf import settings
        from django.utils import timezone

        days = settings.ACCOUNTS_INVITE_DAYS
        return {"expires_at": timezone.now() + timedelta(days=days)}

    @admin.display(description="token")
    def short_token(self, obj: Invite) -> str:
        return f"{obj.token[:8]}…"

    @admin.display(description="status")
    def state(self, obj: Invite) -> str:
        return obj.status

    @admin.display(description="link to send (path on this site)")
    def link(self, obj: Invite) -> str:
        if not obj.pk:
            return "Shown once the invite is saved."
        return format_html(
            "<code>{}</code>", reverse("accounts:invite", args=[obj.token])
        )

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            services.invite_issue(invite=obj, created_by=request.user, request=request)

    @admin.action(description="Withdraw the selected invites")
    def revoke(self, request, queryset):
        count = 0
        for invite in queryset:
            if invite.status in ("open", "expired"):
                services.invite_revoke(
                    invite_id=invite.pk, revoked_by=request.user, request=request
                )
                count += 1
        self.message_user(request, f"{count} invite(s) withdrawn.", messages.SUCCESS)


@admin.register(SignUp)
class SignUpAdmin(admin.ModelAdmin):
    list_display = ("user", "mode", "invite", "created_at", "email_verified_at")
    list_filter = ("mode",)
    search_fields = ("user__username", "user__email")
    raw_id_fields = ("user", "invite")
