"""Audit events cannot be changed or deleted: not through the model, not
through querysets, not in admin, not with SQL. Retention is the one delete
allowed; a deleted user's rows keep their username."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from audit.models import AppendOnlyError, AuditEvent, Source
from audit.retention import audit_retention_apply
from audit.services import audit_record
from marketdata.services import watchlist_create
from tests.audit.conftest import events, one

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(user):
    return audit_record(action="login", actor=user, subject_id=user.pk)


def test_the_model_refuses_changes_and_deletes(event):
    event.action = "logout"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="logout")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["action"])
    assert AuditEvent.objects.get(pk=event.pk).action == "login"


def test_the_database_refuses_sql_updates_and_deletes(event):
    for sql in (
        "UPDATE audit_auditevent SET action = 'logout' WHERE id = %s",
        "UPDATE audit_auditevent SET ip = '10.0.0.1' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "login"


def test_admin_shows_events_but_offers_no_change(client, staff_user, event):
    client.force_login(staff_user)
    listing = client.get("/admin/audit/auditevent/", {"action": "login"})
    assert listing.status_code == 200
    assert "trader" in listing.content.decode()
    for params in (
        {"source": "system"},
        {"object_type": "auth.User"},
        {"actor__id__exact": event.actor_id},
        {"at__year": timezone.now().year},
        {"q": "trader"},
    ):
        assert client.get("/admin/audit/auditevent/", params).status_code == 200
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    response = client.post(
        f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    response = client.post(
        f"/admin/audit/auditevent/{event.pk}/change/", {"action": "logout"}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "login"


def test_a_deleted_user_is_still_named(client, staff_user, user):
    watchlist_create(owner=user, name="Mine", symbols=[])
    client.force_login(user)
    client.post("/watchlists/create", {"name": "Second"})
    client.force_login(staff_user)
    response = client.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not get_user_model().objects.filter(pk=user.pk).exists()
    made = one(action="create", object_type="marketdata.Watchlist", source="dashboard")
    assert (made.actor_id, made.actor_username, made.subject_id) == (
        None,
        "trader",
        None,
    )
    # The account's own deletion, and its watchlists going with it.
    gone = one(action="delete", object_type="auth.User")
    assert (gone.actor_username, gone.subject_id) == ("ops", None)
    assert gone.before["username"] == "trader"
    assert len(events(action="delete", object_type="marketdata.Watchlist")) == 2


@override_settings(AUDIT_RETENTION_DAYS=30)
def test_retention_deletes_old_events_in_batches_and_keeps_the_rest(user):
    now = timezone.now()
    for days in (400, 90, 31, 29, 1):
        AuditEvent(
            at=now - timedelta(days=days),
            action="login",
            source=Source.DASHBOARD,
            actor_username=f"{days}d",
        ).save()
    report = audit_retention_apply(now=now, batch=1, limit=2)
    assert (report.deleted, report.complete) == (2, False)
    report = audit_retention_apply(now=now, batch=1)
    assert (report.deleted, report.complete) == (1, True)
    kept = sorted(AuditEvent.objects.values_list("actor_username", flat=True))
    assert "29d" in kept and "1d" in kept
    assert not {"400d", "90d", "31d"} & set(kept)
    # Once done, the trigger refuses deletes again.
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent")


@override_settings(AUDIT_RETENTION_DAYS=0)
def test_retention_zero_keeps_everything(user):
    AuditEvent(
        at=timezone.now() - timedelta(days=5000), action="login", source="system"
    ).save()
    assert audit_retention_apply(now=timezone.now()) is None
    assert AuditEvent.objects.count() >= 1


@override_settings(AUDIT_RETENTION_DAYS=10)
def test_retention_runs_from_the_reclaimer_and_the_command(user):
    from django.core.management import call_command

    from audit import retention
    from core.reclaim import Reclaimer

    old = timezone.now() - timedelta(days=11)
    for _ in range(3):
        AuditEvent(at=old, action="login", source="system").save()
    retention.pacing.reset()
    results = Reclaimer(
        services=["audit.retention.audit_retention_reclaim"], every=1
    ).once()
    report = results["audit.retention.audit_retention_reclaim"]
    assert report.deleted == 3 and report.complete
    AuditEvent(at=old, action="login", source="system").save()
    call_command("audit_retention", stdout=(out := __import__("io").StringIO()))
    assert out.getvalue().startswith("1 audit event(s) before")
    assert not AuditEvent.objects.filter(at__lt=timezone.now() - timedelta(days=10))


def test_a_negative_retention_is_refused_at_start():
    import os
    import subprocess
    import sys

    from tests.timescale.engine import ROOT

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "1", "AUDIT_RETENTION_DAYS": "-5"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "AUDIT_RETENTION_DAYS='-5' is refused" in result.stderr
