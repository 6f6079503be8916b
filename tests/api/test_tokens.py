"""The tokens user_client (/preferences/tokens/): a token is shown once, stored only
as a hash, works at once, and stops working when revoked."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client

from alerts.models import AlertRule
from api.models import ApiToken

pytestmark = pytest.mark.django_db
URL = "/preferences/tokens/"


def _shown(response) -> str:
    found = re.search(r'id="token-value"[^>]*>(tl_[^<]+)<', response.content.decode())
    assert found, "the new token is on the user_client"
    return found.group(1)


def test_login_required():
    response = Client().get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_token_shown_once_and_stored_hashed(user_client, user, bearer):
    response = user_client.post(URL, {"name": "laptop", "scope": "read"})
    assert response.status_code == 200
    plain = _shown(response)
    row = ApiToken.objects.get(user=user)
    assert (row.name, row.scope) == ("laptop", "read")
    assert row.secret_hash == hashlib.sha256(plain.encode()).hexdigest()
    # Nowhere in the row is the secret itself.
    secret = plain.rsplit("_", 1)[1]
    assert all(
        secret not in str(getattr(row, f.attname)) for f in ApiToken._meta.fields
    )
    # Later visits list the token by its prefix only.
    listing = user_client.get(URL).content.decode()
    assert f"tl_{row.prefix}_" in listing and plain not in listing
    assert (
        "no-cache" in response["Cache-Control"]
        or "no-store" in response["Cache-Control"]
    )
    # It works at once, and records its use.
    assert bearer(plain).get("/api/watchlists").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_bad_form_input_is_shown_back(user_client, user):
    response = user_client.post(URL, {"name": "  ", "scope": "admin"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "This field is required" in text or "Give the token a name" in text
    assert "Select a valid choice" in text
    assert not ApiToken.objects.exists()


def test_revoke_stops_the_token(user_client, user, bearer):
    plain = _shown(user_client.post(URL, {"name": "ci", "scope": "read-write"}))
    api = bearer(plain)
    assert api.get("/api/alerts/rules").status_code == 200
    row = ApiToken.objects.get(user=user)
    response = user_client.post(f"{URL}{row.pk}/revoke")
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert api.get("/api/alerts/rules").status_code == 401
    assert "revoked" in user_client.get(URL).content.decode()


def test_another_users_token_cannot_be_revoked(
    user_client, other_user, make_token, bearer
):
    plain = make_token(other_user)
    row = ApiToken.objects.get(user=other_user)
    assert user_client.post(f"{URL}{row.pk}/revoke").status_code == 404
    assert user_client.get(URL).content.decode().count(row.prefix) == 0
    assert bearer(plain).get("/api/watchlists").status_code == 200


def test_rule_made_by_api_equals_rule_made_on_the_page(
    user_client, user, instruments, make_token, bearer
):
    fields = {
        "symbol": "AAPL",
        "kind": "rsi",
        "direction": "below",
        "level": "30",
        "hysteresis": "2",
        "timeframe": "15m",
        "period": "14",
        "cooldown_seconds": "600",
        "note": "oversold",
        # Not used by RSI: the form clears it on both paths.
        "fast_period": "5",
    }
    form = {**fields, "active": "on", "fast_period": "5"}
    assert user_client.post("/alerts/new", form).status_code == 302
    api = bearer(make_token(user))
    response = api.post("/api/alerts/rules", fields, content_type="application/json")
    assert response.status_code == 201, response.content
    by_page, by_api = AlertRule.objects.order_by("id")
    compared = [
        f.attname
        for f in AlertRule._meta.fields
        if f.attname not in {"id", "created_at", "updated_at"}
    ]
    assert {n: getattr(by_page, n) for n in compared} == {
        n: getattr(by_api, n) for n in compared
    }
    assert by_api.fast_period is None


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Asia/Tokyo", "2026-07-01 21:00 Tokyo"),
        ("exchange", "2026-07-01 08:00 New York"),
        ("local", "2026-07-01 12:00 UTC"),  # until format.js rewrites it
    ],
)
def test_token_times_follow_the_display_zone(
    user_client, user, make_token, zone, shown
):
    from datetime import UTC, datetime

    from preferences.services import preferences_update

    make_token(user)
    at = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    ApiToken.objects.update(created_at=at, last_used_at=at, revoked_at=at)
    preferences_update(user=user, time_zone=zone)
    body = user_client.get(URL).content.decode()
    row = body[body.index("<tbody>") :]
    assert row.count(f'data-fmt="datetime_minute">{shown}</time>') == 3
    assert " UTC</time>" not in row or zone == "local"
