"""Which models are audited, and how.

Named by "app_label.ModelName": a name whose model is not installed is
skipped without a word, so models other branches add (transactions, invites,
API tokens) are listed here already and recorded from the day they exist.
Field names an entry gives that the model lacks are ignored the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db import models

from audit.models import Action

# Field names whose values are never stored (shown as "[hidden]"), in every
# audited model: password and token hashes, keys, secrets.
SECRET_NAME = re.compile(
    r"(password|passwd|hash|digest|secret|salt|token|(^|_)key)$", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Audited:
    label: str
    # Noise: changes to these alone record nothing, and they are not shown.
    ignore: tuple[str, ...] = ()
    # Recorded as changed, never with their value (besides SECRET_NAME).
    secret: tuple[str, ...] = ()
    # Attribute paths to the user the object belongs to; the first present.
    owner: tuple[str, ...] = ("owner_id",)
    # Action recorded instead of create/delete, e.g. {"create": TOKEN_CREATED}.
    actions: dict[str, str] = field(default_factory=dict)
    # An update that sets one of these fields (to a non-empty value) is
    # recorded as the action named, e.g. revoked_at -> token_revoked.
    on_change: dict[str, str] = field(default_factory=dict)

    def is_secret(self, name: str) -> bool:
        return name in self.secret or bool(SECRET_NAME.search(name))


_TIMESTAMPS = ("created_at", "updated_at")

AUDITED: tuple[Audited, ...] = (
    # Provider settings are the instrument's `provider_symbols` (the symbol
    # each provider streams it by); everything else comes from the environment.
    Audited(
        "marketdata.Instrument",
        ignore=(
            *_TIMESTAMPS,
            "viewed_at",
            "stream_error",
            "stream_error_at",
            "stream_error_retry_at",
            "stream_error_retries",
        ),
        owner=(),
    ),
    Audited("marketdata.Watchlist", ignore=_TIMESTAMPS),
    Audited(
        "marketdata.WatchlistItem", ignore=("added_at",), owner=("watchlist.owner_id",)
    ),
    Audited("marketdata.Position", ignore=("opened_at",)),
    Audited("marketdata.Transaction", ignore=_TIMESTAMPS, owner=("position.owner_id",)),
    Audited("alerts.AlertRule", ignore=(*_TIMESTAMPS, "last_fired_at")),
    Audited(
        settings.AUTH_USER_MODEL,
        ignore=("last_login",),
        secret=("password",),
        owner=("pk",),
        on_change={"password": Action.PASSWORD_CHANGED},
    ),
    # The invite's link carries `token` (kept in clear for staff to copy):
    # never in the log. Whose invite: the staff member who made it. Use sets
    # used_at and used_by together: one invite_used event with both.
    Audited(
        "accounts.Invite",
        ignore=_TIMESTAMPS,
        secret=("token",),
        owner=("created_by_id",),
        actions={"create": Action.INVITE_CREATED},
        on_change={"used_at": Action.INVITE_USED, "used_by": Action.INVITE_USED},
    ),
    # last_used_at is written with QuerySet.update (no signal) at most once a
    # minute; it is use, not a change of the token.
    Audited(
        "api.ApiToken",
        ignore=(*_TIMESTAMPS, "last_used_at"),
        secret=("secret_hash",),
        owner=("user_id",),
        actions={"create": Action.TOKEN_CREATED, "delete": Action.TOKEN_REVOKED},
        on_change={"revoked_at": Action.TOKEN_REVOKED},
    ),
)

_by_model: dict[type[models.Model], Audited] = {}


def audited_models() -> dict[type[models.Model], Audited]:
    """Installed audited models and their entries (built on first call)."""
    if not _by_model:
        for entry in AUDITED:
            try:
                model = apps.get_model(entry.label)
            except (LookupError, ValueError):
                continue
            _by_model[model] = entry
    return _by_model


def entry_for(model: type[models.Model]) -> Audited | None:
    return audited_models().get(model)


def label_of(model: type[models.Model]) -> str:
    return f"{model._meta.app_label}.{model._meta.object_name}"
