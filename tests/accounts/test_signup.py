"""The three sign-up modes (TAPELINE_SIGNUP), invites, and email confirmation,
through the pages a person uses."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.utils import timezone

from accounts import services
from accounts.models import Invite, SignUp
from tests.accounts.conftest import STRONG, link_in

pytestmark = pytest.mark.django_db


def form(username="newbie", email="newbie@example.com", password=STRONG):
    return {
        "username": username,
        "email": email,
        "password1": password,
        "password2": password,
    }


def users(username="newbie"):
    return get_user_model().objects.filter(username=username)


# --- closed ----------------------------------------------------------------------
def test_closed_by_default_nobody_can_sign_up(client, settings):
    assert settings.TAPELINE_SIGNUP == "closed"
    page = client.get("/accounts/signup/")
    assert page.status_code == 403
    assert "made by an administrator" in page.text
    assert client.post("/accounts/signup/", form()).status_code == 403
    assert not users().exists()
    login = client.get("/login/").text
    assert "Create an account" not in login and "Forgot your password?" in login


def test_closed_refuses_invite_links_too(client, settings, staff_user):
    invite = services.invite_create(created_by=staff_user)
    response = client.post(f"/accounts/invite/{invite.token}/", form())
    assert response.status_code == 403 and not users().exists()


# --- invite ----------------------------------------------------------------------
@pytest.fixture
def invite_mode(settings):
    settings.TAPELINE_SIGNUP = "invite"


def test_staff_make_an_invite_and_it_makes_one_account(
    client, invite_mode, staff_user, sent
):
    client.force_login(staff_user)
    made = client.post(
        "/accounts/invites/", {"email": "", "note": "Ana", "days": "3"}, follow=True
    )
    invite = Invite.objects.get()
    link = f"/accounts/invite/{invite.token}/"
    assert link in made.text and "Ana" in made.text
    assert invite.expires_at - timezone.now() > timedelta(days=2, hours=23)
    assert sent[-1][0] == "invite_created"
    assert sent[-1][1]["created_by"] == staff_user
    client.logout()

    page = client.get(link)
    assert page.status_code == 200 and "You were invited by ops" in page.text
    response = client.post(link, form())
    assert response.status_code == 302
    assert response["Location"] == "/accounts/welcome/"
    user = users().get()
    assert user.is_active and user.email == "newbie@example.com"
    assert client.get("/").status_code == 200  # logged in
    invite.refresh_from_db()
    assert invite.used_by == user and invite.status == "used"
    assert SignUp.objects.get(user=user).email_verified_at is not None
    assert [name for name, _ in sent[-2:]] == ["invite_used", "user_signed_up"]
    assert sent[-1][1]["mode"] == "invite" and sent[-1][1]["invite"] == invite

    # The same link again: refused, saying why.
    client.logout()
    again = client.get(link)
    assert again.status_code == 410
    assert "already used" in again.text
    assert client.post(link, form(username="second")).status_code == 410
    assert not users("second").exists()


def test_invites_page_is_staff_only(client, user, invite_mode):
    client.force_login(user)
    assert client.get("/accounts/invites/").status_code == 404
    assert client.post("/accounts/invites/", {"days": "3"}).status_code == 404
    assert not Invite.objects.exists()


@pytest.mark.parametrize(
    ("state", "status", "words"),
    [
        ("expired", 410, "expired on"),
        ("revoked", 410, "withdrawn"),
        ("unknown", 404, "not valid"),
    ],
)
def test_unusable_invites_say_why(
    client, invite_mode, staff_user, state, status, words
):
    invite = services.invite_create(created_by=staff_user)
    token = invite.token
    if state == "expired":
        invite = services.invite_create(
            created_by=staff_user, expires_at=timezone.now() - timedelta(minutes=1)
        )
        token = invite.token
    elif state == "revoked":
        services.invite_revoke(invite_id=invite.pk, revoked_by=staff_user)
    else:
        token = token[:-3] + "xyz"
    response = client.post(f"/accounts/invite/{token}/", form())
    assert response.status_code == status
    assert words in response.text
    assert not users().exists()


def test_invite_mode_without_a_link_is_closed(client, invite_mode):
    response = client.get("/accounts/signup/")
    assert response.status_code == 403 and "invite link" in response.text


def test_invite_for_an_address_takes_only_that_address(client, invite_mode, staff_user):
    invite = services.invite_create(created_by=staff_user, email="ana@example.com")
    link = f"/accounts/invite/{invite.token}/"
    response = client.post(link, form(email="eve@example.com"))
    assert response.status_code == 200
    assert "This invite is for ana@example.com." in response.text
    assert not users().exists()
    assert client.post(link, form(email="ANA@example.com")).status_code == 302


def test_taken_name_and_weak_passwords_are_shown_back(
    client, invite_mode, staff_user, user
):
    invite = services.invite_create(created_by=staff_user)
    link = f"/accounts/invite/{invite.token}/"
    taken = client.post(link, form(username="Trader"))  # exists as "trader"
    assert "A user with that username already exists." in taken.text
    for password, words in [
        ("short1", "too short"),
        ("password123", "too common"),
        ("4815162342", "entirely numeric"),
        ("newbie2024", "too similar to the username"),
    ]:
        response = client.post(link, form(password=password))
        assert response.status_code == 200
        assert words in response.text, password
    mismatch = client.post(link, {**form(), "password2": STRONG + "x"})
    assert "didn’t match" in mismatch.text
    assert not users().exists()
    invite.refresh_from_db()
    assert invite.status == "open"  # refused forms do not use the invite up


def test_one_invite_raced_by_two_sign_ups_makes_one_account(invite_mode, staff_user):
    invite = services.invite_create(created_by=staff_user)
    services.user_sign_up(
        username="first",
        email="a@example.com",
        password=STRONG,
        invite_token=invite.token,
    )
    with pytest.raises(services.ValidationError, match="already used"):
        services.user_sign_up(
            username="second",
            email="b@example.com",
            password=STRONG,
            invite_token=invite.token,
        )
    assert not users("second").exists()


# --- open ------------------------------------------------------------------------
@pytest.fixture
def open_mode(settings):
    settings.TAPELINE_SIGNUP = "open"


def test_open_sign_up_waits_for_the_confirmed_address(client, open_mode, sent):
    assert "Create an account" in client.get("/login/").text
    response = client.post("/accounts/signup/", form())
    assert response.status_code == 200
    assert "We sent a confirmation link to" in response.text
    user = users().get()
    assert not user.is_active
    assert sent[-1][0] == "user_signed_up" and sent[-1][1]["mode"] == "open"
    (message,) = mail.outbox
    assert message.to == ["newbie@example.com"]
    link = link_in(message.body)

    # Logging in before confirming: no session, a fresh link instead.
    early = client.post("/login/", {"username": "newbie", "password": STRONG})
    assert "Confirm your email address first" in early.text
    assert "_auth_user_id" not in client.session
    assert len(mail.outbox) == 2

    confirmed = client.get(link)
    assert confirmed.status_code == 302
    assert confirmed["Location"] == "/accounts/welcome/"
    user.refresh_from_db()
    assert user.is_active
    assert sent[-1][0] == "email_verified"
    client.logout()

    again = client.get(link)
    assert again.status_code == 409 and "already confirmed" in again.text
    assert (
        client.post("/login/", {"username": "newbie", "password": STRONG}).status_code
        == 302
    )


def test_open_sign_up_refuses_an_address_already_in_use(client, open_mode, user):
    user.email = "trader@example.com"
    user.save()
    response = client.post("/accounts/signup/", form(email="Trader@Example.com"))
    assert "An account with this address exists already" in response.text
    assert not users().exists()


def test_late_and_mangled_confirmation_links(client, open_mode, settings):
    client.post("/accounts/signup/", form())
    user = users().get()
    past = signing.time.time() - settings.ACCOUNTS_VERIFY_SECONDS - 60
    with mock.patch.object(signing.time, "time", return_value=past):
        late = services.verification_token_make(user=user)
    response = client.get(f"/accounts/verify/{late}/")
    assert response.status_code == 410 and "expired" in response.text
    mangled = client.get(f"/accounts/verify/{late[:-2]}xx/")
    assert mangled.status_code == 404 and "not valid" in mangled.text
    user.refresh_from_db()
    assert not user.is_active


def test_a_deactivated_account_is_not_revived_by_its_old_link(client, open_mode):
    client.post("/accounts/signup/", form())
    link = link_in(mail.outbox[0].body)
    assert client.get(link).status_code == 302
    user = users().get()
    user.is_active = False  # an administrator's decision
    user.save()
    assert client.get(link).status_code == 409
    user.refresh_from_db()
    assert not user.is_active


def test_admin_makes_and_withdraws_invites(client, staff_user, sent):
    client.force_login(staff_user)
    expires = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%d")
    response = client.post(
        "/admin/accounts/invite/add/",
        {
            "email": "ana@example.com",
            "note": "Ana",
            "expires_at_0": expires,
            "expires_at_1": "12:00:00",
        },
    )
    assert response.status_code == 302, response.text
    invite = Invite.objects.get()
    assert len(invite.token) >= 32 and invite.created_by == staff_user
    assert sent[-1][0] == "invite_created"
    page = client.get(f"/admin/accounts/invite/{invite.pk}/change/")
    assert f"/accounts/invite/{invite.token}/" in page.text
    client.post(
        "/admin/accounts/invite/",
        {"action": "revoke", "_selected_action": [invite.pk]},
    )
    invite.refresh_from_db()
    assert invite.status == "revoked" and sent[-1][0] == "invite_revoked"


def test_an_abandoned_open_sign_up_frees_its_name_once_its_link_expired(
    client, open_mode, settings
):
    client.post("/accounts/signup/", form())
    fresh = client.post("/accounts/signup/", form(email="other@example.com"))
    assert "A user with that username already exists." in fresh.text
    SignUp.objects.update(
        created_at=timezone.now()
        - timedelta(seconds=settings.ACCOUNTS_VERIFY_SECONDS + 60)
    )
    again = client.post("/accounts/signup/", form(email="other@example.com"))
    assert "We sent a confirmation link to" in again.text
    assert users().get().email == "other@example.com"
