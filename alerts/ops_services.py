"""Writes for ops alerts: what the feed monitor (`streaming.monitor`) raised
and cleared, stored, shown to staff and emailed to them.

`ops_alerts_record(*, changes)` stores a batch of raise/clear records (dicts
with `key`, `kind`, `connection`, `provider`, `worker`, `message`,
`raised_at`, `cleared_at`). It is idempotent by `key`: the stream worker
retries a batch whose commit it could not confirm, and one raised and cleared
while the database was away arrives as one record with both times. After the
commit, each newly raised or newly cleared alert is sent to the staff group
(`core.groups.STAFF_GROUP`) as::

    {"type": "ops.alert",            # consumer handler: ops_alert
     "alert": {"id": 3, "kind": "disconnected", "connection": "alpaca:equity",
               "provider": "alpaca", "message": "...", "active": true,
               "raised_at": "<iso>", "cleared_at": null, "url": "/status/"}}

and each newly raised one is emailed to every active staff user with an
address (Dramatiq actor `alerts.tasks.ops_alert_email_send`; emails Redis
could not enqueue are sent by the reclaimer, `ops_alert_emails_reclaim`).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from alerts.models import OpsAlert
from core.groups import STAFF_GROUP

FIELDS = ("kind", "connection", "provider", "worker", "message", "raised_at")


def ops_alerts_record(*, changes: list[dict]) -> list[OpsAlert]:
    """Store raise/clear records; on commit tell staff (module docstring)."""
    if not changes:
        return []
    latest: dict[str, dict] = {}
    for change in changes:  # the last record of a key wins
        latest[change["key"]] = change
    raised: list[OpsAlert] = []
    cleared: list[OpsAlert] = []
    with transaction.atomic():
        existing = {
            a.key: a
            for a in OpsAlert.objects.select_for_update().filter(key__in=list(latest))
        }
        for key, change in latest.items():
            alert = existing.get(key)
            if alert is None:
                alert = OpsAlert(key=key, cleared_at=change.get("cleared_at"))
                for name in FIELDS:
                    setattr(alert, name, change.get(name) or "")
                alert.message = alert.message[:300]
                alert.save()
                raised.append(alert)
            elif alert.cleared_at is None and change.get("cleared_at"):
                alert.cleared_at = change["cleared_at"]
                alert.save(update_fields=["cleared_at"])
                cleared.append(alert)
        messages = [ops_alert_message(alert=a) for a in raised + cleared]
        emails = [a.pk for a in raised]
        transaction.on_commit(lambda: _deliver(messages=messages, emails=emails))
    return raised + cleared


def ops_alert_payload(*, alert: OpsAlert) -> dict:
    try:
        url = reverse("dashboard:status")
    except NoReverseMatch:
        url = "/status/"
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "connection": alert.connection,
        "provider": alert.provider,
        "message": alert.message,
        "active": alert.cleared_at is None,
        "raised_at": alert.raised_at.isoformat(),
        "cleared_at": alert.cleared_at.isoformat() if alert.cleared_at else None,
        "url": url,
    }


def ops_alert_message(*, alert: OpsAlert) -> dict:
    return {"type": "ops.alert", "alert": ops_alert_payload(alert=alert)}


def _deliver(*, messages: list[dict], emails: list[int]) -> None:
    from alerts.services import deliver
    from alerts.tasks import ops_alert_email_send

    deliver(
        messages=[(STAFF_GROUP, m) for m in messages],
        email_ids=emails,
        email_task=ops_alert_email_send,
        what="ops alert",
    )


def ops_alert_mark_emailed(*, alert: OpsAlert) -> None:
    alert.emailed_at = timezone.now()
    alert.save(update_fields=["emailed_at"])


def ops_alert_emails_reclaim() -> int:
    """The reclaimer's pass (`core.reclaim`): when the alerts queue is empty,
    enqueue again the ops alert emails of the last day never sent (older than
    a minute, so a send under way is left be)."""
    import dramatiq

    from alerts.tasks import ops_alert_email_send
    from marketdata.reclaim import messages_waiting

    if messages_waiting(dramatiq.get_broker(), "alerts"):
        return 0
    now = timezone.now()
    ids = list(
        OpsAlert.objects.filter(
            emailed_at__isnull=True,
            created_at__lt=now - timedelta(minutes=1),
            created_at__gte=now - timedelta(days=1),
        ).values_list("pk", flat=True)[:200]
    )
    for alert_id in ids:
        ops_alert_email_send.send(alert_id)
    return len(ids)


def ops_alerts_clear_orphans(*, worker: str) -> int:
    """Clear the active alerts of an earlier run of the same worker (same
    host and shard, another pid): it cannot clear them itself any more."""
    host, _, rest = worker.partition(":")
    shard = rest.partition(":")[2]
    return (
        OpsAlert.objects.filter(
            cleared_at__isnull=True,
            worker__startswith=f"{host}:",
            worker__endswith=f":{shard}",
        )
        .exclude(worker=worker)
        .update(cleared_at=timezone.now())
    )
