"""Who is calling the API: a personal token (`Authorization: Bearer tl_…`)
or the browser's session (for the browsable docs and the dashboard's own
chart requests; writes then need the CSRF token, as any form does).

A token that is presented but bad or revoked is a 401 at once, never a
fall-through to the session: a script should learn its token is dead. A
read-only token may only read (GET/HEAD/OPTIONS): anything else is a 403.
Each token request counts against the token's rate limit (429 past it).
"""

from __future__ import annotations

from ninja.errors import AuthenticationError, AuthorizationError, HttpError
from ninja.security import HttpBearer, django_auth

from api.ratelimit import rate_limit_hit
from api.services import api_token_authenticate
from audit.context import audit_actor_set

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimited(HttpError):
    def __init__(self, *, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            429, f"Rate limit reached for this token: retry in {retry_after} s."
        )


class TokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        api_token = api_token_authenticate(plain=token)
        if api_token is None:
            raise AuthenticationError(message="Invalid or revoked API token.")
        retry_after = rate_limit_hit(token_id=api_token.pk)
        if retry_after is not None:
            raise RateLimited(retry_after=retry_after)
        if request.method not in SAFE_METHODS and not api_token.can_write:
            raise AuthorizationError(
                message="This token is read-only; make a read-write token to change data."
            )
        # Views shared with the session path read request.user.
        request.user = api_token.user
        request.api_token = api_token
        audit_actor_set(user=api_token.user, source="api")  # the audit log's "who"
        return api_token.user


AUTH = [TokenAuth(), django_auth]
