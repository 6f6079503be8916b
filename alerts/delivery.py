"""Delivery of fired alerts to email and the owner's channels, one record each.

Flow
----
`alerts.services.alert_events_record` calls `deliveries_create` inside its
transaction: one `Delivery` per (alert, target) where the targets are the
rule's enabled channels plus email when the rule asks for it (and the
owner's preferences allow it, and they have an address). Quiet hours hold
back email, Slack, Discord and Telegram (person-facing); generic webhooks
are still sent. On commit `deliveries_enqueue` sends one Dramatiq message
per delivery (`alerts.tasks.delivery_send`), so a slow endpoint holds up
only its own message.

The row is the truth; a message only wakes a worker. `delivery_attempt`
claims the row with one UPDATE (pending and due), counting the attempt and
moving `next_attempt_at` a lease ahead, so duplicate messages are harmless.
Then it sends, and records the outcome:

- sent: `delivered_at`; the channel's consecutive failures back to 0;
- permanent error (4xx other than 408/429, a refused address, no email
  address): `failed`, not retried;
- anything else (5xx, 408, 429, timeout, connection): retried after
  ALERT_DELIVERY_BACKOFF_SECONDS doubling per attempt (capped at
  ALERT_DELIVERY_BACKOFF_MAX_SECONDS, at least the Retry-After asked), by a
  delayed message; after ALERT_DELIVERY_MAX_ATTEMPTS it is `abandoned`.

Every failed attempt counts against the channel; ALERT_CHANNEL_MAX_FAILURES
in a row disable it (`channel_disable`): its pending deliveries are
abandoned, the owner sees a notice on the alerts page and gets an email.

Digests
-------
Per owner and channel (email counts as one channel): the first
ALERT_DIGEST_THRESHOLD alerts within ALERT_DIGEST_WINDOW_SECONDS are sent
one by one. Further alerts are folded into one digest delivery (a row
without an event; the alerts' own rows are `folded` and point at it),
opened by the first folded alert and sent a window later with every alert
folded in meanwhile. Once it is sent, counting starts again from the
individual messages of the last window. Folding and claiming a digest take
the owner's advisory lock, so no alert joins a digest already being sent.

Nothing lost: `deliveries_reclaim` (a reclaim service, core.reclaim) sends
again pending deliveries due for over a minute (the message was lost while
Redis was away, or the worker died mid-attempt).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from alerts.channel_services import channel_disable
from alerts.delivery_models import (
    QUIET_HOURS_KINDS,
    Delivery,
    DeliveryChannel,
    DeliveryStatus,
)
from alerts.messages import digest_message, event_message
from alerts.throttle import channel_slot
from alerts.transports import Message, TransportError, channel_send
from core.logs import RateLimitedLog
from core.redis import REDIS_ERRORS, redis_outage

logger = logging.getLogger(__name__)
# The reclaimer enqueues in batches: one line a minute, not one per delivery.
enqueue_failures = RateLimitedLog(logger)

OWNER_LOCK = 0x646C7672  # advisory lock namespace ("dlvr"), second key: owner id
EARLY = timedelta(seconds=1)  # a delayed message may arrive a little early
RECLAIM_AFTER = timedelta(seconds=60)
RECLAIM_BATCH = 1000


def deliveries_create(
    *, events: list, fired: list, preferences: dict, now: datetime
) -> list[tuple[int, float]]:
    """Rows for the fired alerts (call inside the recording transaction);
    returns (delivery id, delay in seconds) to enqueue once committed."""
    from alerts.models import AlertRule

    rule_ids = {e.rule_id for e in events if e.rule_id is not None}
    if not rule_ids:
        return []
    channels = defaultdict(list)
    links = AlertRule.channels.through.objects.filter(
        alertrule_id__in=rule_ids, deliverychannel__enabled=True
    ).values_list("alertrule_id", "deliverychannel_id", "deliverychannel__kind")
    for rule_id, channel_id, kind in links:
        channels[rule_id].append((channel_id, kind))
    owners = {e.owner_id for e in events}
    emailing = {
        e.owner_id for e, f in zip(events, fired, strict=True) if f.notify_email
    }
    addresses = (
        dict(
            get_user_model()
            .objects.filter(pk__in=emailing)
            .exclude(email="")
            .values_list("pk", "email")
        )
        if emailing
        else {}
    )
    targets = []
    for event, f in zip(events, fired, strict=True):
        if event.rule_id is None:
            continue
        prefs = preferences[event.owner_id]
        for channel_id, kind in channels[event.rule_id]:
            if not (prefs.quiet and kind in QUIET_HOURS_KINDS):
                targets.append((event, channel_id))
        if f.notify_email and prefs.email and event.owner_id in addresses:
            targets.append((event, None))
    if not targets:
        return []
    _lock_owners({event.owner_id for event, _ in targets})
    window = timedelta(seconds=settings.ALERT_DIGEST_WINDOW_SECONDS)
    recent = {
        (row["owner_id"], row["channel_id"]): row["n"]
        for row in Delivery.objects.filter(
            owner_id__in=owners, created_at__gte=now - window, event__isnull=False
        )
        .exclude(status=DeliveryStatus.FOLDED)
        .values("owner_id", "channel_id")
        .annotate(n=Count("id"))
    }
    digests = {
        (d.owner_id, d.channel_id): d
        for d in Delivery.objects.filter(
            owner_id__in=owners,
            event__isnull=True,
            status=DeliveryStatus.PENDING,
            attempts=0,
        )
    }
    rows, send = [], []
    for event, channel_id in targets:
        target = (event.owner_id, channel_id)
        digest = digests.get(target)
        if digest is None and recent.get(target, 0) >= settings.ALERT_DIGEST_THRESHOLD:
            digest = Delivery.objects.create(
                owner_id=event.owner_id,
                channel_id=channel_id,
                next_attempt_at=now + window,
            )
            digests[target] = digest
            send.append((digest.pk, window.total_seconds()))
        row = Delivery(
            owner_id=event.owner_id,
            event=event,
            channel_id=channel_id,
            next_attempt_at=now,
        )
        if digest is not None:
            row.status, row.parent = DeliveryStatus.FOLDED, digest
        else:
            recent[target] = recent.get(target, 0) + 1
        rows.append(row)
    Delivery.objects.bulk_create(rows)
    send.extend((row.pk, 0.0) for row in rows if row.parent is None)
    return send


def deliveries_enqueue(*, deliveries: list[tuple[int, float]]) -> None:
    """One message per delivery. Redis away: the rows stay pending and the
    reclaimer sends them later (one log line for the outage)."""
    from alerts.tasks import delivery_send

    outage = redis_outage()
    for done, (delivery_id, delay) in enumerate(deliveries):
        try:
            if delay > 0:
                delivery_send.send_with_options(
                    args=(delivery_id,), delay=int(delay * 1000)
                )
            else:
                delivery_send.send(delivery_id)
        except REDIS_ERRORS as exc:
            # The rest would wait for the same connection timeout each.
            outage.failed(exc, doing="enqueueing alert deliveries")
            outage.skipped("alert deliveries not enqueued", len(deliveries) - done)
            return
        except Exception as exc:  # pending: the reclaimer sends it again
            enqueue_failures.error(
                "enqueue", "could not enqueue delivery %s", delivery_id, exc=exc
            )


def delivery_attempt(*, delivery_id: int) -> str:
    """Claim the delivery if it is due, send it, record the outcome; returns
    the status afterwards ("not due" when another attempt has it, "busy"
    when its channel has no free slot: `alerts.throttle`)."""
    row = (
        Delivery.objects.filter(pk=delivery_id)
        .values_list("owner_id", "channel_id", "event_id", "status", "next_attempt_at")
        .first()
    )
    if row is None:
        return "missing"
    owner_id, channel_id, event_id, status, due = row
    if status != DeliveryStatus.PENDING or due > timezone.now() + EARLY:
        return "not due"  # checked again when claiming
    lease = 2 * settings.ALERT_DELIVERY_TIMEOUT + 60
    with channel_slot(channel_id=channel_id, lease=lease) as free:
        if not free:
            deliveries_enqueue(deliveries=[(delivery_id, random.uniform(1.0, 2.0))])
            return "busy"
        if not _claim(delivery_id, owner_id, digest=event_id is None, lease=lease):
            return "not due"
        delivery = Delivery.objects.select_related(
            "channel", "owner", "event__instrument", "event__rule"
        ).get(pk=delivery_id)
        try:
            message = _message(delivery)
            if delivery.channel is None:
                _email(delivery, message)
            else:
                channel_send(
                    channel=delivery.channel, message=message, delivery_id=delivery.pk
                )
        except TransportError as exc:
            return _failed(delivery, exc)
        return _sent(delivery)


def _claim(delivery_id: int, owner_id: int, *, digest: bool, lease: float) -> bool:
    """Count the attempt and move `next_attempt_at` a lease ahead, if the row
    is pending and due. A digest is claimed under its owner's lock, so no
    alert is folded into it once it is being sent."""
    now = timezone.now()
    claim = Delivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now + EARLY
    )
    values = {
        "attempts": F("attempts") + 1,
        "next_attempt_at": now + timedelta(seconds=lease),
    }
    if not digest:
        return bool(claim.update(**values))
    with transaction.atomic():
        _lock_owners({owner_id})
        return bool(claim.update(**values))


def deliveries_reclaim() -> int:
    """The reclaimer's pass: send again pending deliveries due for over a
    minute (their message was lost, or their worker died mid-attempt)."""
    now = timezone.now()
    ids = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lt=now - RECLAIM_AFTER
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:RECLAIM_BATCH]
    )
    if ids:
        # Not again for another minute, whatever happens to these messages.
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
        deliveries_enqueue(deliveries=[(i, 0.0) for i in ids])
    return len(ids)


def backoff_seconds(*, attempts: int, retry_after: float | None = None) -> float:
    delay = min(
        settings.ALERT_DELIVERY_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0),
        settings.ALERT_DELIVERY_BACKOFF_MAX_SECONDS,
    )
    if retry_after:
        delay = max(delay, min(retry_after, 3600.0))
    return delay


def _message(delivery: Delivery) -> Message:
    if delivery.event_id is not None:
        return event_message(event=delivery.event, delivery_id=delivery.pk)
    with transaction.atomic():
        # Folding takes the owner's lock too: the list is complete.
        _lock_owners({delivery.owner_id})
        events = [
            row.event
            for row in delivery.folded.select_related(
                "event__instrument", "event__rule"
            ).order_by("event__ts", "event_id")
        ]
    return digest_message(events=events, delivery_id=delivery.pk)


def _email(delivery: Delivery, message: Message) -> None:
    from preferences.selectors import email_wanted

    owner = delivery.owner
    if not owner.email:
        raise TransportError("the account has no email address", permanent=True)
    if not email_wanted(user_id=owner.pk):
        raise TransportError("alert emails are turned off", permanent=True)
    try:
        send_mail(
            subject=message.subject[:150],
            message=message.text + "\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[owner.email],
        )
    except OSError as exc:  # smtplib errors are OSErrors
        raise TransportError(
            f"mail server: {type(exc).__name__}: {exc}"[:300], permanent=False
        ) from None


def _sent(delivery: Delivery) -> str:
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENT, delivered_at=now, last_error=""
    )
    if delivery.channel_id:
        if delivery.channel.consecutive_failures:
            DeliveryChannel.objects.filter(pk=delivery.channel_id).update(
                consecutive_failures=0
            )
    elif delivery.event_id:
        from alerts.models import AlertEvent

        AlertEvent.objects.filter(pk=delivery.event_id).update(emailed_at=now)
    return DeliveryStatus.SENT


def _failed(delivery: Delivery, error: TransportError) -> str:
    text = str(error)[:300]
    update = {"last_error": text}
    retry = None
    if error.permanent:
        update["status"] = DeliveryStatus.FAILED
    elif delivery.attempts >= settings.ALERT_DELIVERY_MAX_ATTEMPTS:
        update["status"] = DeliveryStatus.ABANDONED
        update["last_error"] = f"gave up after {delivery.attempts} attempts: {text}"[
            :300
        ]
    else:
        retry = backoff_seconds(
            attempts=delivery.attempts, retry_after=error.retry_after
        )
        update["next_attempt_at"] = timezone.now() + timedelta(seconds=retry)
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(**update)
        if retry is not None:
            pending = [(delivery.pk, retry)]
            transaction.on_commit(lambda: deliveries_enqueue(deliveries=pending))
        channel = delivery.channel
        if channel is not None:
            DeliveryChannel.objects.filter(pk=channel.pk).update(
                consecutive_failures=F("consecutive_failures") + 1
            )
            channel.refresh_from_db(fields=["consecutive_failures", "enabled"])
            limit = settings.ALERT_CHANNEL_MAX_FAILURES
            if channel.enabled and channel.consecutive_failures >= limit:
                channel_disable(
                    channel=channel,
                    reason=f"{channel.consecutive_failures} failed deliveries in a "
                    f"row; the last: {text}",
                )
    logger.info(
        "delivery %s attempt %s failed: %s", delivery.pk, delivery.attempts, text
    )
    return update.get("status", DeliveryStatus.PENDING)


def _lock_owners(owner_ids: set[int]) -> None:
    with connection.cursor() as cursor:
        for owner_id in sorted(owner_ids):
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s::int, %s::int)", [OWNER_LOCK, owner_id]
            )
