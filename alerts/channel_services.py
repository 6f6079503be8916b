"""Writes for a user's delivery channels: create, update, enable/disable,
delete, a test message sent at once (for the channels page), and turning
off a channel that keeps failing (`alerts.delivery`)."""

from __future__ import annotations

import logging
import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from alerts.delivery_models import (
    TURNED_OFF_BY_OWNER,
    ChannelKind,
    Delivery,
    DeliveryChannel,
    DeliveryStatus,
)
from alerts.messages import test_message
from alerts.transports import TransportError, UnsafeURL, channel_send, url_check

logger = logging.getLogger(__name__)

CHANNEL_FIELDS = ("name", "kind", "url", "secret", "chat_id")
BOT_TOKEN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")


def channel_validate(channel: DeliveryChannel) -> None:
    """Per-kind checks (the webhook address is resolved: see
    `transports.url_check`); fields a kind does not use are cleared."""
    errors: dict[str, str] = {}
    channel.name = (channel.name or "").strip()
    if not channel.name:
        errors["name"] = "Name the channel, e.g. “Ops Slack”."
    if channel.kind not in ChannelKind.values:
        errors["kind"] = "Choose webhook, Slack, Discord or Telegram."
    elif channel.kind == ChannelKind.TELEGRAM:
        channel.url = ""
        channel.secret = (channel.secret or "").strip()
        channel.chat_id = (channel.chat_id or "").strip()
        if not BOT_TOKEN.match(channel.secret):
            errors["secret"] = "Enter the bot token BotFather gave, e.g. 123456:ABC-…"
        if not CHAT_ID.match(channel.chat_id):
            errors["chat_id"] = "Enter the numeric chat id (e.g. -1001234) or @channel."
    else:
        channel.chat_id = ""
        if channel.kind != ChannelKind.WEBHOOK:
            channel.secret = ""
        try:
            channel.url = url_check(channel.url or "")
        except UnsafeURL as exc:
            errors["url"] = str(exc)
        if channel.kind == ChannelKind.WEBHOOK and not channel.secret:
            channel.secret = secrets.token_urlsafe(32)
        if channel.kind == ChannelKind.WEBHOOK and len(channel.secret) < 16:
            errors["secret"] = "The signing secret needs at least 16 characters."
    if (
        channel.name
        and DeliveryChannel.objects.filter(owner_id=channel.owner_id, name=channel.name)
        .exclude(pk=channel.pk)
        .exists()
    ):
        errors["name"] = "You already have a channel with this name."
    if errors:
        raise ValidationError(errors)


def channel_create(*, owner, **fields) -> DeliveryChannel:
    channel = DeliveryChannel(owner=owner, **_known(fields))
    channel_validate(channel)
    channel.save()
    return channel


def channel_update(*, channel: DeliveryChannel, **fields) -> DeliveryChannel:
    """Blank secret fields keep the stored ones (they are never shown back)."""
    fields = _known(fields)
    for name in ("url", "secret"):
        if not fields.get(name) and fields.get("kind", channel.kind) == channel.kind:
            fields.pop(name, None)
    for name, value in fields.items():
        setattr(channel, name, value)
    channel_validate(channel)
    channel.save()
    return channel


def channel_set_enabled(*, channel: DeliveryChannel, enabled: bool) -> DeliveryChannel:
    """Turning a channel back on clears its failures and notice."""
    with transaction.atomic():
        channel.enabled = enabled
        fields = ["enabled", "updated_at"]
        if enabled:
            channel.consecutive_failures = 0
            channel.disabled_at = None
            channel.disabled_reason = ""
        else:
            channel.disabled_at = timezone.now()
            channel.disabled_reason = TURNED_OFF_BY_OWNER
        fields += ["consecutive_failures", "disabled_at", "disabled_reason"]
        channel.save(update_fields=fields)
    return channel


def channel_delete(*, channel: DeliveryChannel) -> None:
    channel.delete()


def channel_test_send(*, channel: DeliveryChannel) -> tuple[bool, str]:
    """Send a test message now; (ok, what happened). Not counted as a
    failure of the channel."""
    try:
        channel_send(channel=channel, message=test_message(channel=channel))
    except TransportError as exc:
        kind = "permanent" if exc.permanent else "would be retried"
        return False, f"{exc} ({kind})"
    return True, "delivered"


def channel_disable(*, channel: DeliveryChannel, reason: str) -> None:
    """Turn a channel off: its pending deliveries are abandoned, its owner
    told (a notice on the alerts page, and an email when they have one)."""
    now = timezone.now()
    with transaction.atomic():
        updated = DeliveryChannel.objects.filter(pk=channel.pk, enabled=True).update(
            enabled=False, disabled_at=now, disabled_reason=reason[:300]
        )
        if not updated:
            return
        Delivery.objects.filter(channel=channel, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.ABANDONED, last_error="channel disabled"
        )
        transaction.on_commit(lambda: _notify_disabled(channel.pk))
    logger.warning("delivery channel %s disabled: %s", channel.pk, reason)


def _notify_disabled(channel_id: int) -> None:
    channel = DeliveryChannel.objects.select_related("owner").get(pk=channel_id)
    if not channel.owner.email:
        return
    link = (
        f"{settings.SITE_URL.rstrip('/')}/alerts/channels/" if settings.SITE_URL else ""
    )
    try:
        send_mail(
            subject=f"[Tapeline] Delivery channel {channel.name!r} was turned off"[
                :150
            ],
            message=(
                f"Your delivery channel {channel} was turned off at "
                f"{channel.disabled_at:%Y-%m-%d %H:%M:%S} UTC.\n\n"
                f"Reason: {channel.disabled_reason}\n\n"
                "Alerts are no longer sent there. Fix the channel and turn it "
                f"back on from the channels page. {link}\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[channel.owner.email],
        )
    except Exception:  # the in-app notice stays
        logger.exception("could not email the owner of channel %s", channel_id)


def _known(fields: dict) -> dict:
    unknown = set(fields) - set(CHANNEL_FIELDS)
    if unknown:
        raise TypeError(f"unknown channel fields: {', '.join(sorted(unknown))}")
    return {k: ("" if v is None else v) for k, v in fields.items()}
