"""Background jobs for alerts (run by `manage.py rundramatiq`)."""

from __future__ import annotations

import dramatiq
from django.conf import settings
from django.core.mail import send_mail

from alerts.delivery import delivery_attempt


@dramatiq.actor(queue_name="alerts", max_retries=0, time_limit=120_000)
def delivery_send(delivery_id: int) -> None:
    """Attempt one alert delivery (email, webhook, chat); idempotent. Retries
    are delayed messages sent by the service (`alerts.delivery`), not
    Dramatiq's, so each attempt and its back-off are recorded on the row."""
    delivery_attempt(delivery_id=delivery_id)


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
