"""The audit log: one append-only row per thing someone did.

Rows are only ever inserted. `save()` of a stored row, `delete()` and the
queryset's `update()`/`delete()` raise `AppendOnlyError`; below the ORM a
trigger (migration 0002) refuses UPDATE and DELETE too, except the two
writes the log itself needs: retention (`audit.retention`, which sets
`tapeline.audit_retention` for its transaction) and a deleted user's id set
to NULL on the rows that named them (their username stays as text).
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnlyError(RuntimeError):
    """An attempt to change or delete a recorded audit event."""


class Source(models.TextChoices):
    DASHBOARD = "dashboard", "Dashboard"
    API = "api", "API"
    ADMIN = "admin", "Admin"
    COMMAND = "command", "Command"
    SYSTEM = "system", "System"


class Action(models.TextChoices):
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login_failed", "Failed login"
    LOGOUT = "logout", "Logged out"
    PASSWORD_CHANGED = "password_changed", "Password changed"
    TOKEN_CREATED = "token_created", "API token created"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    SIGNUP = "signup", "Signed up"
    INVITE_CREATED = "invite_created", "Invite created"
    INVITE_USED = "invite_used", "Invite used"
    CREATE = "create", "Created"
    UPDATE = "update", "Updated"
    DELETE = "delete", "Deleted"


# What a user sees about their own account (/preferences/security/).
SECURITY_ACTIONS = (
    Action.LOGIN,
    Action.LOGIN_FAILED,
    Action.LOGOUT,
    Action.PASSWORD_CHANGED,
    Action.TOKEN_CREATED,
    Action.TOKEN_REVOKED,
    Action.SIGNUP,
)

# Shown instead of a secret's value (password and token hashes, keys).
HIDDEN = "[hidden]"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self):
        raise AppendOnlyError(
            "Audit events cannot be deleted (retention removes old ones: "
            "audit.retention)."
        )

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("Audit events cannot be changed.")


class AuditEvent(models.Model):
    at = models.DateTimeField(default=timezone.now)
    # Who did it; the username is kept as text so the row still says who
    # after the account is deleted (the key is then NULL).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    # Whose account or data it concerns (a failed login: the account tried).
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(
        max_length=100, blank=True, help_text='"app_label.ModelName"'
    )
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    # Field values: every field for a create (after) or delete (before),
    # only the changed ones for an update; secrets as "[hidden]".
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["at"]),
            models.Index(fields=["subject", "action", "at"]),
            models.Index(fields=["object_type", "object_id"]),
            models.Index(fields=["actor", "at"]),
        ]

    def __str__(self) -> str:
        who = self.actor_username or "anonymous"
        what = f" {self.object_type} {self.object_repr}" if self.object_type else ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action}{what}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events cannot be deleted.")
