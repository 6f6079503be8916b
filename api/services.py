"""Writes of API tokens: create (the plain token is returned once and never
stored), revoke, and authenticate a presented token.

A token is `tl_<prefix>_<secret>`: 8 lowercase letters and digits find the
row, 32 random bytes (base64url) are the secret. The row keeps SHA-256 of the
whole token. A slow password hash is not needed: the secret has 256 bits of
entropy, so no dictionary helps, and a fast hash keeps each request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from api.models import ApiToken, Scope

TOKEN_PREFIX = "tl_"
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_LENGTH = 8
# last_used_at is written at most this often per token, not on every request.
LAST_USED_EVERY = timedelta(minutes=1)
MAX_ACTIVE_TOKENS = 50


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user, name: str, scope: str) -> tuple[ApiToken, str]:
    """Make a token; returns the row and the plain token (shown once)."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name."})
    if len(name) > 60:
        raise ValidationError({"name": "Names are at most 60 characters."})
    if scope not in Scope.values:
        raise ValidationError({"scope": f"Choose {' or '.join(Scope.values)}."})
    with transaction.atomic():
        active = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
        if active.count() >= MAX_ACTIVE_TOKENS:
            raise ValidationError(
                f"At most {MAX_ACTIVE_TOKENS} active tokens: revoke one first."
            )
        while True:
            prefix = "".join(
                secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH)
            )
            if not ApiToken.objects.filter(prefix=prefix).exists():
                break
        plain = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        token = ApiToken.objects.create(
            user=user, name=name, scope=scope, prefix=prefix, secret_hash=_hash(plain)
        )
    return token, plain


def api_token_revoke(*, user, token_id: int) -> ApiToken:
    """Revoke one of `user`'s tokens (`ApiToken.DoesNotExist` for another's)."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token_id, user=user)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, plain: str) -> ApiToken | None:
    """The active token `plain` names, its user loaded; None when unknown,
    malformed, revoked or its user is inactive."""
    plain = (plain or "").strip()
    if not plain.startswith(TOKEN_PREFIX):
        return None
    prefix, _, secret = plain[len(TOKEN_PREFIX) :].partition("_")
    if len(prefix) != PREFIX_LENGTH or not secret:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(plain)):
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
