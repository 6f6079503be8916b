"""Background jobs for alerts (run by `manage.py rundramatiq`)."""

from __future__ import annotations

import dramatiq
from django.conf import settings
from django.core.mail import send_mail

from alerts.models import AlertEvent
from alerts.services import alert_event_mark_emailed


@dramatiq.actor(queue_name="alerts", max_retries=5, time_limit=60_000)
def alert_email_send(event_id: int) -> None:
    """Email one fired alert to its owner; idempotent (skips if already sent)."""
    event = (
        AlertEvent.objects.select_related("owner", "instrument", "rule")
        .filter(pk=event_id)
        .first()
    )
    if event is None or event.emailed_at is not None or not event.owner.email:
        return
    if event.quiet or not _email_wanted(event.owner_id):
        return  # quiet hours when it fired, or the owner turned emails off since
    lines = [
        event.message,
        "",
        f"Instrument: {event.instrument.symbol}",
        f"Time (UTC): {event.ts:%Y-%m-%d %H:%M:%S}",
    ]
    if event.price is not None:
        lines.append(f"Last price: {event.price.normalize():f}")
    if event.note:
        lines.append(f"Note: {event.note}")
    if event.rule is not None:
        lines.append(f"Rule: {event.rule.describe()}")
    send_mail(
        subject=f"[Tapeline] {event.message}"[:150],
        message="\n".join(lines) + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[event.owner.email],
    )
    alert_event_mark_emailed(event=event)


def _email_wanted(owner_id: int) -> bool:
    # Quiet hours were judged when the alert was recorded (`event.quiet`);
    # here only whether the owner still wants emails at all.
    from preferences.selectors import email_wanted

    return email_wanted(user_id=owner_id)


@dramatiq.actor(queue_name="alerts", max_retries=5, time_limit=60_000)
def ops_alert_email_send(alert_id: int) -> None:
    """Email one ops alert to every active staff user with an address;
    idempotent (skips if already sent)."""
    from django.contrib.auth import get_user_model

    from alerts.models import OpsAlert
    from alerts.ops_services import ops_alert_mark_emailed

    alert = OpsAlert.objects.filter(pk=alert_id).first()
    if alert is None or alert.emailed_at is not None:
        return
    recipients = list(
        get_user_model()
        .objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if recipients:
        lines = [
            alert.message,
            "",
            f"Kind: {alert.get_kind_display()}",
            f"Raised (UTC): {alert.raised_at:%Y-%m-%d %H:%M:%S}",
        ]
        if alert.connection:
            lines.append(f"Connection: {alert.connection}")
        if alert.worker:
            lines.append(f"Worker: {alert.worker}")
        if alert.cleared_at:
            lines.append(f"Cleared (UTC): {alert.cleared_at:%Y-%m-%d %H:%M:%S}")
        send_mail(
            subject=f"[Tapeline ops] {alert.message}"[:150],
            message="\n".join(lines) + "\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
    ops_alert_mark_emailed(alert=alert)
