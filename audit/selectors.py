"""Reads of the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import SECURITY_ACTIONS, AuditEvent


def security_events_for_user(*, user) -> QuerySet[AuditEvent]:
    """Events about the user's own account (logins, failed logins, password
    and token changes), newest first; never anyone else's."""
    return AuditEvent.objects.filter(
        subject=user, action__in=SECURITY_ACTIONS
    ).order_by("-at", "-id")
