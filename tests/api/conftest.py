from __future__ import annotations

import pytest
from django.test import Client

from api.services import api_token_create


@pytest.fixture
def make_token():
    def make(user, scope: str = "read-write", name: str = "script") -> str:
        return api_token_create(user=user, name=name, scope=scope)[1]

    return make


@pytest.fixture
def token(user, make_token) -> str:
    return make_token(user)


@pytest.fixture
def bearer():
    """A test client that sends `Authorization: Bearer <token>` (no session)."""

    def make(token: str) -> Client:
        return Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    return make
