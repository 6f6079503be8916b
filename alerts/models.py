"""Alert rules owned by users and the alerts they fired."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from marketdata.models import PRICE, Instrument

TIMEFRAME_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}
MAX_COOLDOWN_SECONDS = 7 * 24 * 3600


class RuleKind(models.TextChoices):
    PRICE = "price", "Price crosses a level"
    CHANGE_PCT = "change_pct", "Change % vs previous close"
    RSI = "rsi", "RSI crosses a level"
    MA_CROSS = "ma_cross", "Moving-average crossover"
    VOLUME_SPIKE = "volume_spike", "Volume spike"


class Direction(models.TextChoices):
    ABOVE = "above", "Crosses above"
    BELOW = "below", "Crosses below"


class AlertTimeframe(models.TextChoices):
    M1 = "1m", "1 minute"
    M5 = "5m", "5 minutes"
    M15 = "15m", "15 minutes"
    H1 = "1h", "1 hour"


class MovingAverage(models.TextChoices):
    SMA = "sma", "Simple (SMA)"
    EMA = "ema", "Exponential (EMA)"


# Which optional fields each kind uses; the others are cleared by `clean`.
KIND_FIELDS = {
    RuleKind.PRICE: {"level", "hysteresis"},
    RuleKind.CHANGE_PCT: {"level", "hysteresis"},
    RuleKind.RSI: {"level", "hysteresis", "timeframe", "period"},
    RuleKind.MA_CROSS: {"timeframe", "fast_period", "slow_period", "ma_type"},
    RuleKind.VOLUME_SPIKE: {"level", "period"},
}
OPTIONAL_FIELDS = (
    "level",
    "hysteresis",
    "timeframe",
    "period",
    "fast_period",
    "slow_period",
    "ma_type",
)


# What a user may set on a rule (forms and services accept exactly these).
RULE_FIELDS = (
    "kind",
    "direction",
    *OPTIONAL_FIELDS,
    "cooldown_seconds",
    "one_shot",
    "active",
    "notify_email",
    "note",
)


class AlertRule(models.Model):
    """One user's condition on one instrument.

    Every kind is "a value crosses a level": the last price (price), the change
    in % against the previous close (change_pct), RSI on closed bars of
    `timeframe` (rsi), fast MA minus slow MA against 0 (ma_cross), or the
    current minute's volume divided by the average of the last `period` minutes
    against the multiple `level` (volume_spike). A rule fires on the tick that
    crosses, then re-arms only after the value has gone back beyond
    `level ∓ hysteresis`.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_rules"
    )
    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, related_name="alert_rules"
    )
    kind = models.CharField(max_length=16, choices=RuleKind.choices)
    direction = models.CharField(
        max_length=5, choices=Direction.choices, default=Direction.ABOVE
    )
    level = models.DecimalField(
        **PRICE,
        null=True,
        blank=True,
        help_text="Price, percent, RSI level or volume multiple, by kind.",
    )
    hysteresis = models.DecimalField(
        **PRICE,
        default=Decimal(0),
        blank=True,
        help_text="Re-arm only after the value moves this far back past the level.",
    )
    timeframe = models.CharField(
        max_length=3, choices=AlertTimeframe.choices, blank=True
    )
    period = models.PositiveIntegerField(
        null=True, blank=True, help_text="RSI period, or minutes averaged for volume."
    )
    fast_period = models.PositiveIntegerField(null=True, blank=True)
    slow_period = models.PositiveIntegerField(null=True, blank=True)
    ma_type = models.CharField(max_length=3, choices=MovingAverage.choices, blank=True)
    cooldown_seconds = models.PositiveIntegerField(
        default=300, help_text="No second alert from this rule within this time."
    )
    one_shot = models.BooleanField(
        default=False, help_text="Deactivate the rule after it fires once."
    )
    active = models.BooleanField(default=True)
    notify_email = models.BooleanField(default=False)
    channels = models.ManyToManyField(
        "alerts.DeliveryChannel",
        blank=True,
        related_name="rules",
        help_text="Where else the alert is sent (the owner's channels).",
    )
    note = models.CharField(max_length=200, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner", "instrument__symbol", "id"]
        indexes = [
            models.Index(fields=["instrument", "active"]),
            models.Index(fields=["owner", "active"]),
        ]

    def __str__(self) -> str:
        return f"{self.instrument.symbol if self.instrument_id else '?'}: {self.describe()}"

    def describe(self) -> str:
        """Human wording of the condition, e.g. 'price crosses above 150'."""
        arrow = "above" if self.direction == Direction.ABOVE else "below"
        level = _plain(self.level)
        if self.kind == RuleKind.PRICE:
            text = f"price crosses {arrow} {level}"
        elif self.kind == RuleKind.CHANGE_PCT:
            text = f"change vs previous close crosses {arrow} {level}%"
        elif self.kind == RuleKind.RSI:
            text = f"RSI({self.period}, {self.timeframe}) crosses {arrow} {level}"
        elif self.kind == RuleKind.MA_CROSS:
            ma = (self.ma_type or "sma").upper()
            text = (
                f"{ma}({self.fast_period}) crosses {arrow} {ma}({self.slow_period}) "
                f"on {self.timeframe}"
            )
        elif self.kind == RuleKind.VOLUME_SPIKE:
            text = f"minute volume ≥ {level}× the average of the last {self.period} minutes"
        else:
            text = self.kind
        if self.hysteresis and self.kind in (
            RuleKind.PRICE,
            RuleKind.CHANGE_PCT,
            RuleKind.RSI,
        ):
            text += f" (re-arm band {_plain(self.hysteresis)})"
        return text

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def err(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        try:
            kind = RuleKind(self.kind)
        except ValueError:
            raise ValidationError(
                {"kind": f"Choose a rule kind: {', '.join(RuleKind.values)}."}
            ) from None
        used = KIND_FIELDS[kind]
        # Fields the kind does not use are cleared, so a stale value never
        # changes what the rule means.
        for name in OPTIONAL_FIELDS:
            if name not in used:
                setattr(
                    self, name, None if name not in ("timeframe", "ma_type") else ""
                )
        if self.hysteresis is None:
            self.hysteresis = Decimal(0)

        if "level" in used and self.level is None:
            err("level", "Enter a level.")
        level = self.level
        if kind == RuleKind.PRICE and level is not None and level <= 0:
            err("level", "A price level must be greater than 0.")
        if kind == RuleKind.CHANGE_PCT and level is not None:
            if level == 0:
                err("level", "Enter a non-zero percent, e.g. 3 or -3.")
            elif not Decimal(-100) < level <= Decimal(10000):
                err("level", "The percent must be above -100 and at most 10000.")
        if kind == RuleKind.RSI and level is not None and not 0 < level < 100:
            err("level", "An RSI level must be between 0 and 100 (exclusive).")
        if kind == RuleKind.VOLUME_SPIKE:
            if level is not None and not Decimal(1) <= level <= Decimal(1000):
                err("level", "The volume multiple must be between 1 and 1000.")
            if self.direction != Direction.ABOVE:
                err("direction", "A volume spike can only cross above.")
        if self.hysteresis < 0:
            err("hysteresis", "The re-arm band cannot be negative.")
        elif (
            kind in (RuleKind.PRICE, RuleKind.RSI)
            and level is not None
            and self.hysteresis
            and self.direction == Direction.ABOVE
            and self.hysteresis >= level
        ):
            err("hysteresis", "The re-arm band must be smaller than the level.")
        elif (
            kind == RuleKind.RSI
            and level is not None
            and self.direction == Direction.BELOW
            and level + self.hysteresis >= 100
        ):
            err("hysteresis", "Level plus re-arm band must stay below 100.")

        if "timeframe" in used and self.timeframe not in TIMEFRAME_MINUTES:
            err("timeframe", "Choose a timeframe: 1m, 5m, 15m or 1h.")
        if kind == RuleKind.RSI and (
            self.period is None or not 2 <= self.period <= 200
        ):
            err("period", "The RSI period must be between 2 and 200.")
        if kind == RuleKind.VOLUME_SPIKE and (
            self.period is None or not 1 <= self.period <= 1440
        ):
            err("period", "Average over 1 to 1440 minutes.")
        if kind == RuleKind.MA_CROSS:
            if self.ma_type not in MovingAverage.values:
                err("ma_type", "Choose SMA or EMA.")
            fast, slow = self.fast_period, self.slow_period
            if fast is None or not 1 <= fast <= 500:
                err("fast_period", "The fast period must be between 1 and 500.")
            if slow is None or not 2 <= slow <= 500:
                err("slow_period", "The slow period must be between 2 and 500.")
            if fast is not None and slow is not None and fast >= slow:
                err("slow_period", "The slow period must be longer than the fast one.")
        if (
            self.cooldown_seconds is not None
            and self.cooldown_seconds > MAX_COOLDOWN_SECONDS
        ):
            err("cooldown_seconds", "The cooldown can be at most 7 days (604800 s).")
        if errors:
            raise ValidationError(errors)

    @property
    def timeframe_minutes(self) -> int:
        return TIMEFRAME_MINUTES.get(self.timeframe, 1)


DELAYED_AFTER = timedelta(seconds=30)


class AlertEvent(models.Model):
    """One time a rule fired. Kept when the rule is deleted."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_events"
    )
    rule = models.ForeignKey(
        AlertRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
    )
    instrument = models.ForeignKey(
        Instrument, on_delete=models.CASCADE, related_name="alert_events"
    )
    kind = models.CharField(max_length=16, choices=RuleKind.choices)
    ts = models.DateTimeField(help_text="Market time of the tick or bar that fired.")
    price = models.DecimalField(**PRICE, null=True, blank=True)
    values = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=300)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    key = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text="Set by the stream worker: a retried write never records twice.",
    )
    fired_at = models.DateTimeField(
        null=True, blank=True, help_text="When the engine fired (wall clock)."
    )
    quiet = models.BooleanField(
        default=False,
        help_text="Recorded during the owner's quiet hours: no toast or email.",
    )

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=~models.Q(key=""),
                name="alertevent_key_unique",
            )
        ]
        indexes = [
            models.Index(fields=["owner", "-ts"]),
            models.Index(
                fields=["owner"],
                name="alertevent_unseen",
                condition=models.Q(seen_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.ts:%Y-%m-%d %H:%M:%S}: {self.message}"

    @property
    def delayed(self) -> bool:
        """Recorded well after it fired (the database was away meanwhile)."""
        return (
            self.fired_at is not None
            and self.created_at is not None
            and self.created_at - self.fired_at > DELAYED_AFTER
        )


def _plain(value) -> str:
    if value is None:
        return "?"
    text = format(Decimal(value).normalize(), "f")
    return text


class OpsAlertKind(models.TextChoices):
    NO_QUOTES = "no_quotes", "No quotes while the market is open"
    NO_BARS = "no_bars", "No bars while the market is open"
    RECONNECTS = "reconnects", "Reconnect storm"
    DISCONNECTED = "disconnected", "Disconnected"
    DATABASE = "database", "Database unreachable"


class OpsAlert(models.Model):
    """A feed-monitor condition for operators (`streaming.monitor`): raised
    once when it starts, `cleared_at` set when it ends. Shown to staff."""

    key = models.CharField(max_length=32, unique=True)
    kind = models.CharField(max_length=16, choices=OpsAlertKind.choices)
    connection = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    worker = models.CharField(max_length=120, blank=True)
    message = models.CharField(max_length=300)
    raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["-raised_at"])]

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.connection or '-'} {self.raised_at:%Y-%m-%d %H:%M:%S}"
        )

    @property
    def active(self) -> bool:
        return self.cleared_at is None


# Channels and delivery records live in their own module (kept small).
from alerts.delivery_models import (  # noqa: E402
    ChannelKind,
    Delivery,
    DeliveryChannel,
    DeliveryStatus,
)

__all__ = [
    "AlertEvent",
    "AlertRule",
    "ChannelKind",
    "Delivery",
    "DeliveryChannel",
    "DeliveryStatus",
    "OpsAlert",
]
