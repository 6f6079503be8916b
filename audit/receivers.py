"""Signal receivers: saves and deletes of the audited models, logins, failed
logins and logouts, and sign-ups (`accounts.signals.user_signed_up`, when
that module exists).

A save reads the stored row first (pre_save, one query of the tracked
fields; none when `update_fields` names only ignored ones) and records the
difference after it; a delete records every tracked value it had.
"""

from __future__ import annotations

import importlib

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import (
    user_logged_in,
    user_logged_out,
    user_login_failed,
)
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from audit import services
from audit.context import (
    audit_context,
    clean_text,
    request_ip,
    request_user_agent,
)
from audit.models import Action
from audit.registry import audited_models, entry_for, label_of
from audit.services import tracked_fields

_BEFORE = "_audit_before"
_DELETING = "_audit_deleting"


def _pre_save(sender, instance, raw=False, update_fields=None, using=None, **kw):
    instance.__dict__.pop(_BEFORE, None)
    entry = entry_for(sender)
    if raw or entry is None or instance.pk is None:
        return
    fields = tracked_fields(sender, entry)
    if update_fields is not None:
        fields = [
            f for f in fields if f.name in update_fields or f.attname in update_fields
        ]
        if not fields:
            instance.__dict__[_BEFORE] = {}
            return
    row = (
        sender._base_manager.using(using)
        .filter(pk=instance.pk)
        .values(*[f.attname for f in fields])
        .first()
    )
    if row is not None:
        instance.__dict__[_BEFORE] = row


def _post_save(sender, instance, created, raw=False, **kw):
    entry = entry_for(sender)
    before = instance.__dict__.pop(_BEFORE, None)
    if raw or entry is None:
        return
    if not created and before == {}:
        return  # only ignored fields were written
    events = services.events_for_save(
        obj=instance, entry=entry, before=before, created=created
    )
    for event in events:
        event.save()


def _pre_delete(sender, instance, **kw):
    entry = entry_for(sender)
    if entry is None:
        return
    if sender is get_user_model():
        # Rows written while the cascade runs must not point at this user.
        audit_context().deleting_user_ids.add(instance.pk)
    instance.__dict__[_DELETING] = (
        services.snapshot(instance, entry),
        services.delete_identity(instance, entry),
    )


def _post_delete(sender, instance, **kw):
    entry = entry_for(sender)
    stash = instance.__dict__.pop(_DELETING, None)
    if entry is None or stash is None:
        return
    before, ident = stash
    services.event_for_delete(
        obj=instance, entry=entry, before=before, ident=ident
    ).save()
    if sender is get_user_model():
        audit_context().deleting_user_ids.discard(ident["object_id"])


def _user_ident(user) -> dict:
    return {
        "object_type": label_of(get_user_model()),  # `user` may be a lazy object
        "object_id": user.pk,
        "object_repr": clean_text(user.get_username(), services.REPR_MAX),
        "subject_id": user.pk,
    }


def _request_fields(request) -> dict:
    """IP and user agent from the signal's request when it has one (it may
    come from outside the middleware, e.g. `authenticate(request, ...)`)."""
    if request is None or not hasattr(request, "META"):
        return {}
    return {"ip": request_ip(request), "user_agent": request_user_agent(request)}


def _logged_in(sender, request, user, **kw):
    services.audit_record(
        action=Action.LOGIN, actor=user, **_user_ident(user), **_request_fields(request)
    )


def _logged_out(sender, request, user, **kw):
    if user is None:
        return
    services.audit_record(
        action=Action.LOGOUT,
        actor=user,
        **_user_ident(user),
        **_request_fields(request),
    )


def _login_failed(sender, credentials, request=None, **kw):
    """The name tried is kept (as the actor's username text); the account,
    when one has that name, is the subject, so its owner sees the attempt."""
    User = get_user_model()
    tried = clean_text(
        credentials.get(User.USERNAME_FIELD) or credentials.get("username"), 150
    )
    target = (
        User._default_manager.filter(**{User.USERNAME_FIELD: tried}).first()
        if tried
        else None
    )
    ident = (
        _user_ident(target)
        if target is not None
        else {"object_type": label_of(User), "object_repr": tried}
    )
    services.audit_record(
        action=Action.LOGIN_FAILED,
        actor_username=tried,
        **ident,
        **_request_fields(request),
    )


def _signed_up(sender, user=None, request=None, **kw):
    if user is None:
        return
    services.audit_record(
        action=Action.SIGNUP,
        actor=user,
        **_user_ident(user),
        **_request_fields(request),
    )


def receivers_connect() -> list[str]:
    """Connect every receiver; returns the labels of the audited models found."""
    labels = []
    for model in audited_models():
        label = label_of(model)
        labels.append(label)
        pre_save.connect(
            _pre_save, sender=model, dispatch_uid=f"audit.pre_save.{label}"
        )
        post_save.connect(
            _post_save, sender=model, dispatch_uid=f"audit.post_save.{label}"
        )
        pre_delete.connect(
            _pre_delete, sender=model, dispatch_uid=f"audit.pre_delete.{label}"
        )
        post_delete.connect(
            _post_delete, sender=model, dispatch_uid=f"audit.post_delete.{label}"
        )
    user_logged_in.connect(_logged_in, dispatch_uid="audit.logged_in")
    user_logged_out.connect(_logged_out, dispatch_uid="audit.logged_out")
    user_login_failed.connect(_login_failed, dispatch_uid="audit.login_failed")
    try:
        accounts_signals = importlib.import_module("accounts.signals")
    except ImportError:
        accounts_signals = None
    signed_up = getattr(accounts_signals, "user_signed_up", None)
    if signed_up is not None:
        signed_up.connect(_signed_up, dispatch_uid="audit.signed_up")
    return labels
