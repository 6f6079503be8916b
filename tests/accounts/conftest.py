from __future__ import annotations

import re

import pytest

from accounts import signals

STRONG = "amber-falcon-73-quay"


@pytest.fixture
def sent():
    """The `accounts.signals` sent during the test, as (name, kwargs)."""
    seen: list[tuple[str, dict]] = []
    receivers = []
    for name in (
        "user_signed_up",
        "email_verified",
        "invite_created",
        "invite_used",
        "invite_revoked",
        "password_changed",
        "login_locked",
    ):

        def receiver(sender, _name=name, **kwargs):
            kwargs.pop("signal", None)
            seen.append((_name, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((name, receiver))
    yield seen
    for name, receiver in receivers:
        getattr(signals, name).disconnect(receiver)


def link_in(text: str) -> str:
    """The path of the one http link in an email body."""
    (url,) = re.findall(r"https?://\S+", text)
    return re.sub(r"^https?://[^/]+", "", url)
