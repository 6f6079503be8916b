"""Django admin for rules and alert events."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from alerts.models import AlertRule
from alerts.services import alert_rule_create
from tests.factories import AlertEventFactory

pytestmark = pytest.mark.django_db


def test_admin_lists_rules_and_events_and_validates(
    client, staff_user, user, instruments
):
    rule = alert_rule_create(
        owner=user, instrument=instruments["AAPL"], kind="price", level=150
    )
    event = AlertEventFactory(
        owner=user,
        rule=rule,
        instrument=instruments["AAPL"],
        kind="price",
        ts=timezone.now() - timedelta(minutes=1),
        price=Decimal("150.1"),
        message="AAPL crossed above 150",
    )
    client.force_login(staff_user)
    page = client.get("/admin/alerts/alertrule/")
    assert (
        page.status_code == 200 and "price crosses above 150" in page.content.decode()
    )
    assert client.get("/admin/alerts/alertevent/").status_code == 200
    assert client.get(f"/admin/alerts/alertevent/{event.pk}/change/").status_code == 200
    # The model's validation shows in admin too.
    response = client.post(
        f"/admin/alerts/alertrule/{rule.pk}/change/",
        {
            "owner": user.pk,
            "instrument": instruments["AAPL"].pk,
            "kind": "rsi",
            "direction": "above",
            "level": "150",
            "hysteresis": "0",
            "timeframe": "5m",
            "period": "14",
            "ma_type": "",
            "cooldown_seconds": "0",
            "active": "on",
        },
    )
    assert response.status_code == 200
    assert "An RSI level must be between 0 and 100" in response.content.decode()
    rule.refresh_from_db()
    assert rule.kind == "price"
    # Actions: deactivate rules, mark events seen.
    client.post(
        "/admin/alerts/alertrule/",
        {"action": "deactivate", "_selected_action": [rule.pk]},
    )
    rule.refresh_from_db()
    assert rule.active is False
    client.post(
        "/admin/alerts/alertevent/",
        {"action": "mark_seen", "_selected_action": [event.pk]},
    )
    event.refresh_from_db()
    assert event.seen_at is not None


def test_admin_cannot_add_events(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/admin/alerts/alertevent/add/").status_code == 403
    assert AlertRule.objects.count() == 0
