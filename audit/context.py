"""Who is acting, from where: one `AuditContext` per request (or command).

`AuditContextMiddleware` puts the request's context in a ContextVar, so
model signals fired anywhere below the view read it, in sync and async
views alike (asgiref copies context variables into the threads that run
sync code). The user is read from the request only when an event is
recorded: authentication may happen after this middleware (API tokens
authenticate in the view), and reading `request.user` in async middleware
would query the database on the event loop.

Outside requests: `audit_as(source=..., actor=...)` for code that acts on
someone's behalf; otherwise a process started as `manage.py <command>` is
source "command" (the command line as its user agent), anything else
(stream workers, Dramatiq jobs, tests) "system".
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache

from audit.models import Source
from core.storable import UNSTORABLE

# Long-running services: what they change is the system's doing.
SERVICE_COMMANDS = frozenset(
    {"runserver", "rundramatiq", "start_streams", "simulate_exchange", "runworker"}
)
API_PREFIX = "/api/"
USER_AGENT_MAX = 300


@dataclass(slots=True)
class AuditContext:
    source: str
    ip: str | None = None
    user_agent: str = ""
    request: object | None = None
    actor: object | None = None  # set explicitly: API token auth, audit_as
    # Users being deleted in this context: rows written during the cascade
    # must not point at them (the key would break at commit).
    deleting_user_ids: set[int] = field(default_factory=set)

    def actor_user(self):
        if self.actor is not None:
            return self.actor
        user = getattr(self.request, "user", None)
        if user is not None and user.is_authenticated:
            return user
        return None


_current: ContextVar[AuditContext | None] = ContextVar("audit_context", default=None)


def clean_text(value: object, limit: int) -> str:
    """Text PostgreSQL can store, at most `limit` characters."""
    return UNSTORABLE.sub("\ufffd", str(value or ""))[:limit]


def request_ip(request) -> str | None:
    """The client address (Daphne's --proxy-headers puts the forwarded one in
    REMOTE_ADDR); None when it is not an IP address (a Unix socket)."""
    raw = (getattr(request, "META", {}) or {}).get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


def request_user_agent(request) -> str:
    meta = getattr(request, "META", {}) or {}
    return clean_text(meta.get("HTTP_USER_AGENT"), USER_AGENT_MAX)


@cache
def _admin_prefix() -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return "/admin/"


def source_for_path(path: str) -> str:
    if path.startswith(_admin_prefix()):
        return Source.ADMIN
    if path.startswith(API_PREFIX):
        return Source.API
    return Source.DASHBOARD


def context_for_request(request) -> AuditContext:
    return AuditContext(
        source=source_for_path(request.path),
        ip=request_ip(request),
        user_agent=request_user_agent(request),
        request=request,
    )


@cache
def _process_context() -> tuple[str, str]:
    argv = sys.argv
    name = os.path.basename(argv[0]) if argv else ""
    if (
        name in ("manage.py", "django-admin")
        and len(argv) > 1
        and argv[1] not in SERVICE_COMMANDS
    ):
        return Source.COMMAND, clean_text(f"manage.py {argv[1]}", USER_AGENT_MAX)
    return Source.SYSTEM, ""


def audit_context() -> AuditContext:
    """The current context; outside requests and `audit_as`, the process's."""
    current = _current.get()
    if current is not None:
        return current
    source, user_agent = _process_context()
    context = AuditContext(source=source, user_agent=user_agent)
    _current.set(context)
    return context


@contextmanager
def audit_as(
    *, source: str, actor=None, ip: str | None = None, user_agent: str = ""
) -> Iterator[AuditContext]:
    """Record what happens inside as done by `actor` through `source`."""
    token = _current.set(
        AuditContext(source=source, actor=actor, ip=ip, user_agent=user_agent)
    )
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def audit_actor_set(*, user, source: str | None = None) -> None:
    """For authentication that does not set `request.user` (API tokens): the
    rest of this request is done by `user`. Mutates the request's context
    object, so a view run in another thread (sync views under ASGI) and the
    middleware see the same one."""
    context = audit_context()
    context.actor = user
    if source is not None:
        context.source = source


def context_push(context: AuditContext):
    return _current.set(context)


def context_pop(token) -> None:
    _current.reset(token)
