"""Password reset end to end through the console mail backend (the
development default), and password change."""

from __future__ import annotations

from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.contrib.auth.tokens import default_token_generator

from tests.accounts.conftest import link_in

pytestmark = pytest.mark.django_db

NEW = "cobalt-heron-58-dune"


@pytest.fixture
def console_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"


@pytest.fixture
def trader(user):
    user.email = "trader@example.com"
    user.save(update_fields=["email"])
    return user


def ask_reset(client, capsys) -> str:
    capsys.readouterr()
    response = client.post(
        "/accounts/password/reset/", {"email": "Trader@example.com"}, follow=True
    )
    assert "If an account has that address" in response.text
    assert "for 2 hours" in response.text
    printed = capsys.readouterr().out
    assert "Subject: Reset your Tapeline password" in printed
    assert "To: trader@example.com" in printed
    return link_in(printed.split("\n\n", 1)[1])


def test_reset_end_to_end_then_the_link_is_spent(
    client, console_mail, capsys, trader, sent
):
    link = ask_reset(client, capsys)
    opened = client.get(link, follow=True)
    assert opened.redirect_chain and "set-password" in opened.redirect_chain[-1][0]
    set_password = opened.redirect_chain[-1][0]
    weak = client.post(
        set_password, {"new_password1": "12345678", "new_password2": "12345678"}
    )
    assert "entirely numeric" in weak.text
    done = client.post(
        set_password, {"new_password1": NEW, "new_password2": NEW}, follow=True
    )
    assert "Your new password is set" in done.text
    assert sent[-1][0] == "password_changed" and sent[-1][1]["how"] == "reset"

    old = client.post("/login/", {"username": "trader", "password": "s3cret-pass"})
    assert old.status_code == 200 and "password didn" in old.text
    assert (
        client.post("/login/", {"username": "trader", "password": NEW}).status_code
        == 302
    )
    client.logout()

    again = client.get(link, follow=True)
    assert "already used" in again.text
    assert "Ask for a new link" in again.text


def test_a_late_reset_link_says_it_expired(
    client, console_mail, capsys, trader, settings
):
    link = ask_reset(client, capsys)
    later = datetime.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)
    with mock.patch.object(default_token_generator, "_now", return_value=later):
        response = client.get(link, follow=True)
        assert "This reset link expired: links last 2 hours." in response.text
        # Nor can the form be posted to once late.
        client.post(link, {"new_password1": NEW, "new_password2": NEW})
    trader.refresh_from_db()
    assert trader.check_password("s3cret-pass")


def test_nothing_is_mailed_for_an_unknown_address(client, console_mail, capsys, trader):
    capsys.readouterr()
    response = client.post(
        "/accounts/password/reset/", {"email": "nobody@example.com"}, follow=True
    )
    assert "If an account has that address" in response.text  # no enumeration
    assert "Subject:" not in capsys.readouterr().out


def test_a_mangled_reset_link_is_not_valid(client, trader):
    response = client.get("/accounts/password/reset/MQ/zzz-notatoken/")
    assert "not valid" in response.text


def test_password_change(client, trader, sent):
    client.force_login(trader)
    page = client.get("/accounts/password/change/")
    assert page.status_code == 200 and "Change password" in page.text
    wrong = client.post(
        "/accounts/password/change/",
        {"old_password": "nope", "new_password1": NEW, "new_password2": NEW},
    )
    assert "Your old password was entered incorrectly" in wrong.text
    weak = client.post(
        "/accounts/password/change/",
        {
            "old_password": "s3cret-pass",
            "new_password1": "password",
            "new_password2": "password",
        },
    )
    assert "too common" in weak.text
    done = client.post(
        "/accounts/password/change/",
        {"old_password": "s3cret-pass", "new_password1": NEW, "new_password2": NEW},
        follow=True,
    )
    assert "Your new password is set" in done.text
    assert client.get("/").status_code == 200  # this session stays logged in
    assert sent[-1][0] == "password_changed" and sent[-1][1]["how"] == "change"
    client.logout()
    assert (
        client.post("/login/", {"username": "trader", "password": NEW}).status_code
        == 302
    )


def test_password_pages_need_a_login(client):
    response = client.get("/accounts/password/change/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
