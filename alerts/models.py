"""Alert rules owned by users and the alerts they fired."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from alerts.kinds import (
    EMPTY,
    OPTIONAL_FIELDS,
    TIMEFRAME_MINUTES,
    kind_choices,
    kind_get,
)
from alerts.kinds.portfolio import MEASURES
from marketdata.models import PRICE, Instrument


def _timeframe_label(name: str) -> str:
    minutes = TIMEFRAME_MINUTES[name]
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours > 1 else "")
    return f"{minutes} minute" + ("s" if minutes > 1 else "")


MAX_COOLDOWN_SECONDS = 7 * 24 * 3600

# The kinds and their fields come from the registry (`alerts.kinds`).
RuleKind = models.TextChoices(
    "RuleKind", [(name.upper(), (name, label)) for name, label in kind_choices()]
)


class Direction(models.TextChoices):
    ABOVE = "above", "Crosses above"
    BELOW = "below", "Crosses below"


AlertTimeframe = models.TextChoices(
    "AlertTimeframe",
    [
        (f"T{name.upper()}", (name, _timeframe_label(name)))
        for name in TIMEFRAME_MINUTES
    ],
)


class MovingAverage(models.TextChoices):
    SMA = "sma", "Simple (SMA)"
    EMA = "ema", "Exponential (EMA)"


class Combine(models.TextChoices):
    AND = "and", "All conditions (AND)"
    OR = "or", "Any condition (OR)"


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
    """One user's condition: on one instrument, on their portfolio, or
    several conditions joined by AND / OR (`kind` = "multi").

    Level kinds are "a value crosses a level" (see `alerts.kinds`): a rule
    fires on the tick that crosses, then re-arms only after the value has
    gone back beyond `level ∓ hysteresis`. Event kinds (pattern, anomaly)
    fire on the event. Each kind's fields, checks and wording live in its
    `alerts.kinds` module.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_rules"
    )
    instrument = models.ForeignKey(
        Instrument,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        null=True,
        blank=True,
        help_text="Empty for portfolio and multi-condition rules.",
    )
    kind = models.CharField(max_length=16, choices=RuleKind.choices)
    direction = models.CharField(
        max_length=5, choices=Direction.choices, default=Direction.ABOVE
    )
    level = models.DecimalField(
        **PRICE,
        null=True,
        blank=True,
        help_text="Price, percent, RSI level, volume multiple or portfolio "
        "amount, by kind.",
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
    measure = models.CharField(
        max_length=8,
        choices=list(MEASURES.items()),
        blank=True,
        help_text="Portfolio rules: market value or day P/L.",
    )
    pattern = models.CharField(
        max_length=32, blank=True, help_text="Pattern rules: the pattern kind."
    )
    anomaly = models.CharField(
        max_length=24, blank=True, help_text="Anomaly rules: the anomaly kind."
    )
    combine = models.CharField(
        max_length=3,
        choices=Combine.choices,
        blank=True,
        help_text="Multi-condition rules: how the conditions combine.",
    )
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text="Multi-condition rules: up to 5 conditions (see alerts.kinds.multi).",
    )
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
        # No join in the default order: rows are locked (select_for_update)
        # and the instrument is nullable. Pages order by symbol themselves.
        ordering = ["owner", "id"]
        indexes = [
            models.Index(fields=["instrument", "active"]),
            models.Index(fields=["owner", "active"]),
        ]

    def __str__(self) -> str:
        if self.instrument_id:
            return f"{self.instrument.symbol}: {self.describe()}"
        if self.kind in (RuleKind.PORTFOLIO_VALUE, RuleKind.MULTI):
            return self.describe()
        return f"?: {self.describe()}"

    def describe(self) -> str:
        """Human wording of the condition, e.g. 'price crosses above 150'."""
        try:
            return kind_get(self.kind).describe(self)
        except KeyError:
            return self.kind

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def err(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        try:
            kind = kind_get(self.kind)
        except KeyError:
            raise ValidationError(
                {"kind": f"Choose a rule kind: {', '.join(RuleKind.values)}."}
            ) from None
        # Fields the kind does not use are cleared, so a stale value never
        # changes what the rule means.
        for name in OPTIONAL_FIELDS:
            if name not in kind.fields:
                setattr(self, name, EMPTY.get(name))
        if self.hysteresis is None:
            self.hysteresis = Decimal(0)
        if kind.needs_instrument:
            if not self.instrument_id:
                err("instrument", "Choose an instrument.")
        else:
            self.instrument = None
        kind.check(self, err)
        check_data = getattr(kind, "check_data", None)
        if check_data is not None and self.instrument_id and not errors:
            check_data(self, self.instrument, err)
        if (
            self.cooldown_seconds is not None
            and self.cooldown_seconds > MAX_COOLDOWN_SECONDS
        ):
            err("cooldown_seconds", "The cooldown can be at most 7 days (604800 s).")
        if errors:
            raise ValidationError(errors)

    @property
    def symbols(self) -> list[str]:
        """The instruments the rule watches (empty for a portfolio rule)."""
        if self.kind == RuleKind.MULTI:
            return [c["symbol"] for c in self.conditions or [] if c.get("symbol")]
        return [self.instrument.symbol] if self.instrument_id else []


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
        Instrument,
        on_delete=models.CASCADE,
        related_name="alert_events",
        null=True,
        blank=True,
        help_text="Empty for portfolio and multi-condition alerts.",
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
    def subject(self) -> str:
        """What the alert is about: the instrument's symbol, else the symbols
        recorded when it fired (multi-condition), else "portfolio"."""
        if self.instrument_id:
            return self.instrument.symbol
        return (self.values or {}).get("symbol") or "portfolio"

    @property
    def delayed(self) -> bool:
        """Recorded well after it fired (the database was away meanwhile)."""
        return (
            self.fired_at is not None
            and self.created_at is not None
            and self.created_at - self.fired_at > DELAYED_AFTER
        )


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
