"""Where fired alerts go besides the browser: a user's delivery channels and
one `Delivery` row per message sent (or to send). Imported by
`alerts.models`, so Django sees them as models of the alerts app; how they
are used is in `alerts.delivery`."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    SLACK = "slack", "Slack incoming webhook"
    DISCORD = "discord", "Discord webhook"
    TELEGRAM = "telegram", "Telegram bot"


# Person-facing channels are held back by quiet hours like emails; a generic
# webhook feeds a machine and is always sent.
QUIET_HOURS_KINDS = {
    "email",
    ChannelKind.SLACK,
    ChannelKind.DISCORD,
    ChannelKind.TELEGRAM,
}


# `disabled_reason` of a channel its owner turned off (no failure notice).
TURNED_OFF_BY_OWNER = "turned off by you"


class DeliveryChannel(models.Model):
    """One place a user's alerts are sent. `url` is the webhook address
    (webhook, Slack, Discord); `secret` the webhook's signing secret or the
    Telegram bot token; `chat_id` the Telegram chat. Secrets are never
    rendered in full after saving (`masked_*`)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="delivery_channels",
    )
    name = models.CharField(max_length=60)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    url = models.CharField(max_length=500, blank=True)
    secret = models.CharField(max_length=200, blank=True)
    chat_id = models.CharField(max_length=64, blank=True)
    enabled = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], name="deliverychannel_owner_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def masked_url(self) -> str:
        """scheme://host/… plus the last 4 characters: enough to recognise."""
        if not self.url:
            return ""
        scheme, _, rest = self.url.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        return f"{scheme}://{host}/…{self.url[-4:]}" if "/" in rest else self.url

    @property
    def masked_secret(self) -> str:
        return f"…{self.secret[-4:]}" if self.secret else ""

    @property
    def target(self) -> str:
        if self.kind == ChannelKind.TELEGRAM:
            return f"chat {self.chat_id}, bot token {self.masked_secret}"
        return self.masked_url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # permanent error: not retried
    ABANDONED = "abandoned", "Abandoned"  # out of attempts, or channel disabled
    FOLDED = "folded", "In a digest"  # its alert went out in `parent`


class Delivery(models.Model):
    """One message to one channel: an alert (`event`), or a digest of alerts
    (`event` empty; the folded alerts' rows point at it through `parent`).
    `channel` empty means the owner's email address. `next_attempt_at` is
    when it is due: a worker claims the row by moving it forward."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    event = models.ForeignKey(
        "alerts.AlertEvent",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    channel = models.ForeignKey(
        DeliveryChannel,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="folded",
    )
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_pending_due",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["channel", "created_at"]),
            models.Index(fields=["owner", "created_at"]),
        ]

    def __str__(self) -> str:
        what = f"alert {self.event_id}" if self.event_id else "digest"
        return f"{what} → {self.channel_label}: {self.status}"

    @property
    def channel_label(self) -> str:
        return self.channel.name if self.channel_id else "Email"
