"""Ops alerts: stored once per key, emailed to staff once, and emails Redis
could not enqueue are sent by the reclaimer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from alerts.models import OpsAlert
from alerts.ops_services import (
    ops_alert_emails_reclaim,
    ops_alerts_clear_orphans,
    ops_alerts_record,
)
from alerts.tasks import ops_alert_email_send
from core.redis import key, redis_client


def record(key="k1", worker="host:1:0/1", **fields):
    change = {
        "key": key,
        "kind": "no_quotes",
        "connection": "alpaca:equity",
        "provider": "alpaca",
        "worker": worker,
        "message": "alpaca:equity: no quotes for 1 min 0 s while the market is open",
        "raised_at": datetime.now(UTC),
        "cleared_at": None,
        **fields,
    }
    return ops_alerts_record(changes=[change])


@pytest.mark.transactional
def test_raised_alert_is_emailed_to_active_staff_once(
    user, staff_user, django_user_model
):
    staff_user.email = "ops@example.com"
    staff_user.save()
    user.email = "trader@example.com"
    user.save()
    django_user_model.objects.create_user(
        "gone", email="gone@example.com", is_staff=True, is_active=False
    )
    client = redis_client()
    before = client.llen(key("dramatiq", "alerts"))
    [alert] = record()
    assert client.llen(key("dramatiq", "alerts")) == before + 1
    assert record() == []  # the same key again: nothing new
    assert client.llen(key("dramatiq", "alerts")) == before + 1
    ops_alert_email_send.fn(alert.pk)
    ops_alert_email_send.fn(alert.pk)  # idempotent
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert mail.outbox[0].subject.startswith("[Tapeline ops] alpaca:equity: no quotes")
    alert.refresh_from_db()
    assert alert.emailed_at is not None


@pytest.mark.transactional
def test_reclaimer_sends_emails_never_queued(staff_user):
    staff_user.email = "ops@example.com"
    staff_user.save()
    [alert] = record()
    redis_client().delete(
        key("dramatiq", "alerts"), key("dramatiq", "alerts") + ".msgs"
    )
    OpsAlert.objects.filter(pk=alert.pk).update(
        created_at=datetime.now(UTC) - timedelta(minutes=5)
    )
    assert ops_alert_emails_reclaim() == 1
    assert redis_client().hlen(key("dramatiq", "alerts") + ".msgs") == 1
    assert ops_alert_emails_reclaim() == 0  # one is waiting: nothing more


@pytest.mark.transactional
def test_a_restarted_worker_clears_what_its_earlier_run_left_active():
    record(key="old", worker="host:1:0/1")
    record(key="other-shard", worker="host:1:1/2")
    assert ops_alerts_clear_orphans(worker="host:2:0/1") == 1
    assert OpsAlert.objects.get(key="old").cleared_at is not None
    assert OpsAlert.objects.get(key="other-shard").cleared_at is None
