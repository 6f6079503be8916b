"""Writes for alerts: rules (create/update/delete) and fired alerts.

Fired alerts
------------
`alert_events_record(*, fired)` stores one `AlertEvent` per `FiredAlert`,
stamps the rules' `last_fired_at`, deactivates one-shot rules, stores one
`Delivery` per email and channel the rule sends to (`alerts.delivery`:
retries, digests, disabled channels) and, after the transaction commits,
sends each alert to its owner's channel-layer group
(`core.groups.user_group(owner_id)`) and enqueues each delivery (Dramatiq
actor `alerts.tasks.delivery_send`). The owner's notification preferences
(`preferences.selectors.delivery_for`) are read as the alert is recorded:
toasts or emails turned off, or quiet hours, hold them back (the event is
still stored, `quiet` marks the quiet-hours ones, and the browser message
carries `toast: false` so the page counts it silently).

It is synchronous (it touches the database). The stream worker calls it on
its database thread (`streaming.alerting.AlertOutbox.record`); on commit the
messages go out with one `async_to_sync(group_send)` batch from that thread.
`send=False` stores without sending (tests, benchmarks);
`alert_event_messages(events=...)` builds the messages of stored events.

Message sent to the owner's group (JSON-safe; consumers relay `alert` as is)::

    {
      "type": "alert.fired",          # consumer handler: alert_fired
      "alert": {
        "id": 17,                     # AlertEvent id (POST it to mark seen)
        "rule_id": 5,                 # null when the rule was deleted since
        "symbol": "AAPL",             # "" for portfolio alerts
        "kind": "price",              # an alerts.kinds name (price, rsi, multi, ...)
        "direction": "above",         # above | below
        "level": "150",               # string; null for ma_cross
        "ts": "2024-05-01T14:30:01.123456+00:00",   # market time of the tick/bar
        "price": "150.02",            # last price (string) or null
        "value": 150.02,              # the value that crossed (price, %, RSI, ...)
        "values": {...},              # kind-specific details (floats/strings/null)
        "message": "AAPL crossed above 150 (last 150.02)",
        "note": "take profit",
        "seen": false,
        "quiet": false,               # recorded in the owner's quiet hours
        "toast": true,                # whether the owner wants a pop-up now
        "url": "/alerts/"             # where the history lives
      }
    }

Rule changes
------------
One path: every save or delete of a rule (the services here, the admin, any
ORM code) reaches `rules_changed` through the model signals
(`alerts.signals`); only bulk `.update()`s, which send no signal, call it
themselves. On commit it bumps a Redis counter and records the rule ids
under it (once per change); each stream worker's alert step picks that up
(`AlertEngine.fetch_changes` on its database thread, `apply_changes` on its
loop).

Just over 400 lines, a seventh of it this docstring: the browser message is
documented here because consumers and pages relay it as is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from alerts.delivery import deliveries_create, deliveries_enqueue
from alerts.engine import FiredAlert
from alerts.models import RULE_FIELDS, AlertEvent, AlertRule
from alerts.selectors import changes_key, version_key
from audit.models import Action
from audit.services import audit_record
from core.groups import user_group
from core.logs import RateLimitedLog
from core.redis import REDIS_ERRORS, redis_client, redis_outage
from preferences.selectors import Delivery, delivery_for

logger = logging.getLogger(__name__)
# Runs for every batch of fired alerts: one line a minute per kind of failure.
failures = RateLimitedLog(logger)

_CHANGES_KEEP = 100_000
_BUMP_SCRIPT = f"""
local version = redis.call('INCR', KEYS[1])
for _, id in ipairs(ARGV) do
  redis.call('ZADD', KEYS[2], version, id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', version - {_CHANGES_KEEP})
return version
"""


# --- rule change notification -------------------------------------------------------


def rules_version_bump(*, rule_ids: Iterable[int]) -> int | None:
    """Bump the change counter now and record `rule_ids` under it."""
    ids = [str(int(i)) for i in rule_ids]
    outage = redis_outage()
    try:
        version = redis_client().eval(
            _BUMP_SCRIPT, 2, version_key(), changes_key(), *ids
        )
    except REDIS_ERRORS as exc:
        # The rule is stored; engines that missed a change counter read
        # reload every rule when Redis answers again (alerts.engine).
        outage.failed(exc, doing="publishing an alert rule change")
        return None
    outage.succeeded()
    return int(version)


def rules_changed(*, rule_ids: Iterable[int]) -> None:
    """Tell running engines about changed rules once the transaction commits."""
    ids = list(rule_ids)
    transaction.on_commit(lambda: rules_version_bump(rule_ids=ids))


# --- rules ---------------------------------------------------------------------------


def alert_rule_create(
    *, owner, instrument, channels: Iterable | None = None, **fields
) -> AlertRule:
    """Validate and store a new rule (raises ValidationError on bad input);
    `channels`: the owner's delivery channels it also sends to."""
    unknown = set(fields) - set(RULE_FIELDS)
    if unknown:
        raise TypeError(f"unknown rule fields: {', '.join(sorted(unknown))}")
    rule = AlertRule(owner=owner, instrument=instrument, **fields)
    rule.full_clean()
    with transaction.atomic():
        rule.save()
        if channels is not None:
            alert_rule_channels_set(rule=rule, channels=channels)
    return rule


def alert_rule_update(
    *, rule: AlertRule, channels: Iterable | None = None, **fields
) -> AlertRule:
    """Change a rule's fields (and optionally its instrument and channels),
    validated."""
    unknown = set(fields) - set(RULE_FIELDS) - {"instrument"}
    if unknown:
        raise TypeError(f"unknown rule fields: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.full_clean()
    with transaction.atomic():
        rule.save()
        if channels is not None:
            alert_rule_channels_set(rule=rule, channels=channels)
    return rule


def alert_rule_channels_set(*, rule: AlertRule, channels: Iterable) -> None:
    """Where the rule's alerts are delivered besides toasts and email; only
    the rule owner's channels (another user's is a ValidationError)."""
    channels = list(channels)
    if any(channel.owner_id != rule.owner_id for channel in channels):
        raise ValidationError({"channels": "Choose among your own channels."})
    rule.channels.set(channels)


def alert_rule_set_active(*, rule: AlertRule, active: bool) -> AlertRule:
    with transaction.atomic():
        rule.active = active
        rule.save(update_fields=["active", "updated_at"])
    return rule


def alert_rule_delete(*, rule: AlertRule) -> None:
    """Delete a rule; its alert history stays (with the rule unset)."""
    with transaction.atomic():
        rule.delete()


# --- fired alerts ----------------------------------------------------------------------


def alert_events_record(
    *, fired: list[FiredAlert], send: bool = True
) -> list[AlertEvent]:
    """Store fired alerts; on commit deliver them (see the module docstring)."""
    if not fired:
        return []
    with transaction.atomic():
        # A retried batch (the commit of the first try was not confirmed)
        # records only what is not there yet.
        keys = [f.key for f in fired if f.key]
        if keys:
            done = set(
                AlertEvent.objects.filter(key__in=keys).values_list("key", flat=True)
            )
            fired = [f for f in fired if not f.key or f.key not in done]
            if not fired:
                return []
        # The owners' notification choices now: quiet hours hold back the
        # toast and the email, never the record.
        deliveries = delivery_for(
            user_ids={f.owner_id for f in fired}, at=timezone.now()
        )
        rule_ids = {f.rule_id for f in fired}
        rules = {
            r.pk: r
            for r in AlertRule.objects.select_for_update()
            .filter(pk__in=rule_ids)
            .order_by("pk")  # no join: the instrument is nullable
            .only("pk", "owner", "one_shot", "active", "last_fired_at", "notify_email")
        }
        events = [
            AlertEvent(
                owner_id=f.owner_id,
                rule_id=f.rule_id if f.rule_id in rules else None,
                instrument_id=f.instrument_id,
                kind=f.kind,
                ts=f.ts,
                price=_price(f.price),
                values=_values(f),
                message=f.message[:300],
                note=f.note[:200],
                key=f.key,
                fired_at=f.fired_at,
                quiet=deliveries[f.owner_id].quiet,
            )
            for f in fired
        ]
        AlertEvent.objects.bulk_create(events)
        last_fired: dict[int, object] = {}
        for f in fired:
            if f.rule_id in rules and (
                f.rule_id not in last_fired or f.ts > last_fired[f.rule_id]
            ):
                last_fired[f.rule_id] = f.ts
        deactivated = []
        for rule_id, ts in last_fired.items():
            rule = rules[rule_id]
            update = {"last_fired_at": ts}
            if rule.one_shot and rule.active:
                update["active"] = False
                update["updated_at"] = timezone.now()
                deactivated.append(rule_id)
            # .update() so the save signal does not make every engine reload.
            AlertRule.objects.filter(pk=rule_id).update(**update)
            if "active" in update:
                # A one-shot rule turned itself off: recorded like any change.
                audit_record(
                    action=Action.UPDATE,
                    object_type="alerts.AlertRule",
                    object_id=rule_id,
                    object_repr=f"alert rule #{rule_id} (one-shot, fired)",
                    before={"active": True},
                    after={"active": False},
                    subject_id=rule.owner_id,
                )
        if deactivated:
            rules_changed(rule_ids=deactivated)
        outgoing = deliveries_create(
            events=events, fired=fired, preferences=deliveries, now=timezone.now()
        )
        messages = (
            alert_event_messages(events=events, fired=fired, deliveries=deliveries)
            if send
            else []
        )
        transaction.on_commit(lambda: _deliver(messages=messages, outgoing=outgoing))
    return events


def alert_event_messages(
    *,
    events: list[AlertEvent],
    fired: list[FiredAlert] | None = None,
    deliveries: dict[int, Delivery] | None = None,
) -> list[tuple[str, dict]]:
    """(group, message) pairs for the channel layer, one per event. Every
    event is sent (the page's unseen count and history update); `toast`
    says whether the owner's choices allow a pop-up now."""
    messages = []
    fired = fired or [None] * len(events)
    if deliveries is None:
        deliveries = delivery_for(
            user_ids={e.owner_id for e in events}, at=timezone.now()
        )
    for event, f in zip(events, fired, strict=True):
        payload = alert_payload(event=event, fired=f)
        payload["toast"] = deliveries[event.owner_id].toast and not event.quiet
        messages.append(
            (user_group(event.owner_id), {"type": "alert.fired", "alert": payload})
        )
    return messages


def alert_payload(*, event: AlertEvent, fired: FiredAlert | None = None) -> dict:
    """The JSON-safe `alert` dict of an `alert.fired` message."""
    values = event.values or {}
    symbol = fired.symbol if fired else values.get("symbol", "")
    if not symbol and not fired and event.instrument_id:
        symbol = event.instrument.symbol
    direction = fired.direction if fired else values.get("direction", "")
    level = values.get("level")
    try:
        url = reverse("dashboard:alerts")
    except NoReverseMatch:
        url = "/alerts/"
    return {
        "id": event.pk,
        "rule_id": event.rule_id,
        "symbol": symbol,
        "kind": event.kind,
        "direction": direction,
        "level": None if level is None else _number_text(level),
        "ts": event.ts.isoformat(),
        "price": None if event.price is None else _number_text(event.price),
        "value": values.get("value"),
        "values": values,
        "message": event.message,
        "note": event.note,
        "seen": event.seen_at is not None,
        "delayed": event.delayed,
        "quiet": event.quiet,
        "url": url,
    }


def deliver(
    *,
    messages: list[tuple[str, dict]],
    email_ids: list[int],
    email_task,
    what: str = "alert",
) -> None:
    """Send stored alerts' messages to their groups and enqueue their emails
    (`email_task.send(id)`). Redis away: one line for the whole outage
    (core.outage), not one traceback per alert; the rows are stored, so pages
    still show them, and emails not enqueued are counted in the outage's end
    line (the reclaimer sends them later)."""
    outage = redis_outage()
    if messages:
        try:
            _group_send_all(messages)
        except REDIS_ERRORS as exc:
            outage.failed(exc, doing=f"sending {what}s to browsers")
            outage.skipped(f"{what}s not sent to browsers", len(messages))
        except Exception as exc:
            failures.error(
                f"publish:{what}",
                "could not publish %d %s(s)",
                len(messages),
                what,
                exc=exc,
            )
    for row_id in email_ids:
        try:
            email_task.send(row_id)
        except REDIS_ERRORS as exc:
            outage.failed(exc, doing=f"enqueueing an {what} email")
            outage.skipped(f"{what} emails not enqueued")
        except Exception as exc:
            failures.error(
                f"email:{what}",
                "could not enqueue the email of %s %s",
                what,
                row_id,
                exc=exc,
            )


def _deliver(
    *, messages: list[tuple[str, dict]], outgoing: list[tuple[int, float]]
) -> None:
    deliver(messages=messages, email_ids=[], email_task=None)
    deliveries_enqueue(deliveries=outgoing)


def _group_send_all(messages: list[tuple[str, dict]]) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()

    async def send_all() -> None:
        for group, message in messages:
            await layer.group_send(group, message)

    async_to_sync(send_all)()


def alert_events_mark_seen(*, user, ids: Iterable[int] | None = None) -> int:
    """Mark the user's unseen alerts (all, or those in `ids`) as seen."""
    queryset = AlertEvent.objects.filter(owner=user, seen_at__isnull=True)
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    return queryset.update(seen_at=timezone.now())


def _price(value) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _values(f: FiredAlert) -> dict:
    values = dict(f.values)
    values.setdefault("value", f.value)
    values.setdefault("previous", f.previous)
    values["direction"] = f.direction
    values["symbol"] = f.symbol
    return values


def _number_text(value) -> str:
    text = format(Decimal(str(value)).normalize(), "f")
    return text
