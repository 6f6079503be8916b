"""Writing audit events. Each is inserted in the caller's transaction: a
change that rolls back leaves no event, and no change commits without one.

Any app may call these (audit imports no other app: models are named by
label in `audit.registry`). Model saves and deletes of audited models are
recorded by `audit.receivers`; writes that bypass signals (`bulk_create`,
`bulk_update`, `QuerySet.update`) call `audit_bulk_created`,
`audit_bulk_updated` or `audit_queryset_update`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal

from django.core.exceptions import ObjectDoesNotExist
from django.db import models, transaction

from audit.context import AuditContext, audit_context, clean_text
from audit.models import HIDDEN, Action, AuditEvent
from audit.registry import Audited, entry_for, label_of

REPR_MAX = 200


# --- values --------------------------------------------------------------------
def jsonable(value: object) -> object:
    """A field value as JSON a person can read (decimals without padding)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return clean_text(value, 10_000)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {clean_text(k, 200): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return clean_text(value, 10_000)


def tracked_fields(model: type[models.Model], entry: Audited) -> list[models.Field]:
    return [
        f
        for f in model._meta.concrete_fields
        if f.name not in entry.ignore and f.attname not in entry.ignore
    ]


def snapshot(obj: models.Model, entry: Audited, names=None) -> dict[str, object]:
    """Python values of the object's tracked fields, by attname."""
    return {
        f.attname: f.value_from_object(obj)
        for f in tracked_fields(type(obj), entry)
        if names is None or f.attname in names or f.name in names
    }


def shown(values: Mapping[str, object], entry: Audited) -> dict[str, object]:
    """Stored form: secrets hidden, the rest JSON."""
    return {
        name: HIDDEN if entry.is_secret(name) else jsonable(value)
        for name, value in values.items()
    }


def changed(before: Mapping, after: Mapping) -> list[str]:
    return [name for name in before if name in after and before[name] != after[name]]


def owner_id(obj: models.Model, entry: Audited) -> int | None:
    for path in entry.owner:
        value = obj
        try:
            for part in path.split("."):
                value = getattr(value, part)
        except (AttributeError, ObjectDoesNotExist):
            continue
        return value if isinstance(value, int) else None
    return None


def object_repr(obj: models.Model) -> str:
    try:
        return clean_text(obj, REPR_MAX)
    except Exception:  # a broken __str__ must not lose the event
        return f"{type(obj).__name__} #{obj.pk}"


# --- events ----------------------------------------------------------------------
def _user_id(user, context: AuditContext) -> int | None:
    pk = getattr(user, "pk", None)
    if pk is None or pk in context.deleting_user_ids:
        return None
    return pk


def audit_event(
    *,
    action: str,
    object_type: str = "",
    object_id: object = "",
    object_repr: str = "",
    before: Mapping | None = None,
    after: Mapping | None = None,
    subject_id: int | None = None,
    actor=None,
    actor_username: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> AuditEvent:
    """An unsaved event; who, from where and how come from the current
    context unless given."""
    context = audit_context()
    if actor is None:
        actor = context.actor_user()
    if actor_username is None:
        actor_username = actor.get_username() if actor is not None else ""
    if subject_id in context.deleting_user_ids:
        subject_id = None
    return AuditEvent(
        actor_id=_user_id(actor, context),
        actor_username=clean_text(actor_username, 150),
        subject_id=subject_id,
        source=context.source,
        action=action,
        object_type=object_type,
        object_id=clean_text(object_id if object_id is not None else "", 64),
        object_repr=clean_text(object_repr, REPR_MAX),
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
        ip=ip if ip is not None else context.ip,
        user_agent=user_agent if user_agent is not None else context.user_agent,
    )


def audit_record(**fields) -> AuditEvent:
    """Insert one event (arguments of `audit_event`)."""
    event = audit_event(**fields)
    event.save()
    return event


def _object_fields(obj: models.Model, entry: Audited) -> dict:
    return {
        "object_type": label_of(type(obj)),
        "object_id": obj.pk,
        "object_repr": object_repr(obj),
        "subject_id": owner_id(obj, entry),
    }


def events_for_save(
    *, obj: models.Model, entry: Audited, before: Mapping | None, created: bool
) -> list[AuditEvent]:
    """Events for one saved object: a create with every tracked value, or an
    update with the changed ones (a field of `entry.on_change` set gets its
    own event); none when nothing tracked changed."""
    ident = _object_fields(obj, entry)
    if created or before is None:
        action = entry.actions.get("create", Action.CREATE)
        return [
            audit_event(
                action=action, after=shown(snapshot(obj, entry), entry), **ident
            )
        ]
    after = snapshot(obj, entry, names=set(before))
    names = changed(before, after)
    events = []
    special = _on_change_attnames(obj, entry)
    # Fields naming the same action (an invite's used_at and used_by) make
    # one event together.
    grouped: dict[str, list[str]] = {}
    for name in [n for n in names if n in special and after[n] not in (None, "")]:
        names.remove(name)
        grouped.setdefault(special[name], []).append(name)
    for action, group in grouped.items():
        events.append(
            audit_event(
                action=action,
                before=shown({n: before[n] for n in group}, entry),
                after=shown({n: after[n] for n in group}, entry),
                **ident,
            )
        )
    if names:
        events.append(
            audit_event(
                action=Action.UPDATE,
                before=shown({n: before[n] for n in names}, entry),
                after=shown({n: after[n] for n in names}, entry),
                **ident,
            )
        )
    return events


def _on_change_attnames(obj: models.Model, entry: Audited) -> dict[str, str]:
    found = {}
    for name, action in entry.on_change.items():
        try:
            found[type(obj)._meta.get_field(name).attname] = action
        except Exception:  # a field the model does not have
            continue
    return found


def event_for_delete(
    *, obj: models.Model, entry: Audited, before: Mapping, ident: Mapping
) -> AuditEvent:
    action = entry.actions.get("delete", Action.DELETE)
    return audit_event(action=action, before=shown(before, entry), **ident)


def delete_identity(obj: models.Model, entry: Audited) -> dict:
    """Taken before the row goes (its relations are still readable then)."""
    return _object_fields(obj, entry)


# --- writes that bypass model signals ------------------------------------------
def audit_bulk_created(*, objects: Iterable[models.Model]) -> int:
    """Record rows made with `bulk_create` (they need their primary keys,
    which PostgreSQL returns)."""
    events = []
    for obj in objects:
        entry = entry_for(type(obj))
        if entry is not None:
            events += events_for_save(obj=obj, entry=entry, before=None, created=True)
    AuditEvent.objects.bulk_create(events)
    return len(events)


def audit_bulk_updated(
    *, objects: Iterable[models.Model], before: Mapping[object, Mapping]
) -> int:
    """Record rows written with `bulk_update`; `before` maps each primary key
    to its `snapshot` taken before the objects were changed."""
    events = []
    for obj in objects:
        entry = entry_for(type(obj))
        if entry is not None and obj.pk in before:
            events += events_for_save(
                obj=obj, entry=entry, before=before[obj.pk], created=False
            )
    AuditEvent.objects.bulk_create(events)
    return len(events)


def audit_queryset_update(*, queryset: models.QuerySet, values: Mapping) -> int:
    """`queryset.update(**values)`, recording an update event for every row
    that changed (admin actions); returns the number of rows updated."""
    entry = entry_for(queryset.model)
    if entry is None:
        return queryset.update(**values)
    model = queryset.model
    with transaction.atomic():
        pks = list(queryset.values_list("pk", flat=True))
        rows = list(model._base_manager.select_for_update().filter(pk__in=pks))
        snapshots = {obj.pk: snapshot(obj, entry) for obj in rows}
        count = model._base_manager.filter(pk__in=list(snapshots)).update(**values)
        for obj in rows:
            for name, value in values.items():
                setattr(obj, model._meta.get_field(name).attname, value)
        audit_bulk_updated(objects=rows, before=snapshots)
    return count


def audit_order_changed(
    *, obj: models.Model, name: str, before: list, after: list
) -> AuditEvent | None:
    """One update event for a reordering of `obj`'s children (a watchlist's
    items): the order before and after under `name`, instead of an event
    per shifted position. None when the order did not change."""
    entry = entry_for(type(obj))
    if entry is None or list(before) == list(after):
        return None
    return audit_record(
        action=Action.UPDATE,
        before={name: jsonable(list(before))},
        after={name: jsonable(list(after))},
        **_object_fields(obj, entry),
    )


def snapshot_for_audit(obj: models.Model) -> dict[str, object]:
    """The tracked values of `obj` now, for `audit_bulk_updated` after a
    bulk write; {} for a model that is not audited."""
    entry = entry_for(type(obj))
    return snapshot(obj, entry) if entry is not None else {}
