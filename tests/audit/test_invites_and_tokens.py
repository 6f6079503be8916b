"""Invites and API tokens in the audit log: an invite made by staff and used
by a newcomer is invite_created then one invite_used; a token made and
revoked on the tokens page is token_created then token_revoked; the invite's
link token, the API token and its hash appear in no event."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Invite
from api.models import ApiToken
from audit.models import HIDDEN, Action, AuditEvent, Source
from tests.audit.conftest import events, one

pytestmark = pytest.mark.django_db

STRONG = "amber-falcon-73-quay"


def everything_recorded() -> str:
    return " ".join(
        f"{e.object_repr} {e.before} {e.after} {e.user_agent}"
        for e in AuditEvent.objects.all()
    )


def test_an_invite_made_and_used(client, settings, staff_user):
    settings.TAPELINE_SIGNUP = "invite"
    client.force_login(staff_user)
    made = client.post("/accounts/invites/", {"email": "", "note": "Ana", "days": "3"})
    assert made.status_code == 302
    invite = Invite.objects.get()
    created = one(action=Action.INVITE_CREATED)
    assert (created.source, created.actor_id, created.subject_id) == (
        Source.DASHBOARD,
        staff_user.pk,
        staff_user.pk,
    )
    assert created.object_type == "accounts.Invite"
    assert created.object_id == str(invite.pk)
    assert created.after["token"] == HIDDEN and created.after["note"] == "Ana"
    client.logout()

    response = client.post(
        f"/accounts/invite/{invite.token}/",
        {
            "username": "newbie",
            "email": "newbie@example.com",
            "password1": STRONG,
            "password2": STRONG,
        },
    )
    assert response.status_code == 302
    newbie = get_user_model().objects.get(username="newbie")
    used = one(action=Action.INVITE_USED)  # used_at and used_by: one event
    assert used.object_id == str(invite.pk) and used.subject_id == staff_user.pk
    assert used.before == {"used_at": None, "used_by_id": None}
    assert used.after["used_by_id"] == newbie.pk and used.after["used_at"]
    assert events(action=Action.UPDATE, object_type="accounts.Invite") == []
    assert one(action=Action.SIGNUP).subject_id == newbie.pk

    assert invite.token not in everything_recorded()


def test_an_invite_revoked_is_an_update_of_revoked_at(client, settings, staff_user):
    settings.TAPELINE_SIGNUP = "invite"
    client.force_login(staff_user)
    client.post("/accounts/invites/", {"email": "", "note": "", "days": "3"})
    invite = Invite.objects.get()
    client.post(f"/accounts/invites/{invite.pk}/revoke")
    invite.refresh_from_db()
    assert invite.revoked_at is not None
    revoked = one(action=Action.UPDATE, object_type="accounts.Invite")
    assert revoked.actor_id == staff_user.pk
    assert revoked.before == {"revoked_at": None} and revoked.after["revoked_at"]
    assert invite.token not in everything_recorded()


def test_a_token_made_used_and_revoked(client, user):
    client.force_login(user)
    page = client.post("/preferences/tokens/", {"name": "laptop", "scope": "read"})
    assert page.status_code == 200
    token = ApiToken.objects.get(user=user)
    plain = page.context["plain"]
    assert plain.startswith(f"tl_{token.prefix}_")
    created = one(action=Action.TOKEN_CREATED)
    assert (created.source, created.actor_id, created.subject_id) == (
        Source.DASHBOARD,
        user.pk,
        user.pk,
    )
    assert created.object_type == "api.ApiToken"
    assert created.after["secret_hash"] == HIDDEN
    assert (created.after["name"], created.after["scope"]) == ("laptop", "read")

    # Using it is not a change of the token: nothing recorded.
    before = AuditEvent.objects.count()
    api = client.__class__(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert api.get("/api/watchlists").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert AuditEvent.objects.count() == before

    response = client.post(f"/preferences/tokens/{token.pk}/revoke")
    assert response.status_code == 302
    revoked = one(action=Action.TOKEN_REVOKED)
    assert (revoked.actor_id, revoked.subject_id, revoked.object_id) == (
        user.pk,
        user.pk,
        str(token.pk),
    )
    assert revoked.before == {"revoked_at": None} and revoked.after["revoked_at"]
    assert events(action=Action.UPDATE, object_type="api.ApiToken") == []

    recorded = everything_recorded()
    assert plain not in recorded and token.secret_hash not in recorded
    # Both show on the owner's security page.
    security = client.get("/preferences/security/").content.decode()
    assert "API token created" in security and "API token revoked" in security
