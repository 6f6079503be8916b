"""factory_boy factories for what tests build most: users, instruments,
watchlists, positions, alert rules and the alerts they fire, and the rule
form the pages post.

Rows with a service go through it (`watchlist_create`, `alert_rule_create`):
a factory never builds what the application could not. Instruments come from
the universe (`marketdata.universe`) by symbol, as the `instruments` fixture
loads them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from factory.django import DjangoModelFactory, Password

from alerts.models import AlertEvent, AlertRule
from marketdata.models import Instrument, Position, Watchlist

PASSWORD = "s3cret-pass"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = Password(PASSWORD)


class InstrumentFactory(DjangoModelFactory):
    """An instrument of the universe by `symbol` (stored when missing)."""

    class Meta:
        model = Instrument

    symbol = "AAPL"

    @classmethod
    def _create(cls, model_class, *args, symbol: str, **kwargs):
        from marketdata.services import instruments_upsert
        from marketdata.universe import universe_rows

        found = model_class.objects.filter(symbol=symbol).first()
        if found is None:
            rows = [r for r in universe_rows() if r["symbol"] == symbol]
            if not rows:
                raise ValueError(f"{symbol} is not in the universe")
            instruments_upsert(rows=rows)
            found = model_class.objects.get(symbol=symbol)
        return found


class WatchlistFactory(DjangoModelFactory):
    """`marketdata.services.watchlist_create`; `symbols` of the universe."""

    class Meta:
        model = Watchlist

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"List {n}")
    symbols: list[str] = []

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from marketdata.services import watchlist_create

        return watchlist_create(**kwargs)


class PositionFactory(DjangoModelFactory):
    class Meta:
        model = Position

    owner = factory.SubFactory(UserFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    quantity = Decimal(10)
    average_cost = Decimal(100)


class AlertRuleFactory(DjangoModelFactory):
    """`alerts.services.alert_rule_create` (validated): by default a price
    rule on AAPL, above 150, with no cooldown."""

    class Meta:
        model = AlertRule

    owner = factory.SubFactory(UserFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    kind = "price"
    direction = "above"
    level = Decimal(150)
    cooldown_seconds = 0

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from alerts.services import alert_rule_create

        return alert_rule_create(**kwargs)


class AlertEventFactory(DjangoModelFactory):
    """A fired price alert, unseen, five minutes ago (`seen=True`: seen now)."""

    class Meta:
        model = AlertEvent
        exclude = ("seen",)

    owner = factory.SubFactory(UserFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    rule = None
    kind = "price"
    ts = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=5))
    price = Decimal("150.5")
    message = factory.LazyAttribute(
        lambda o: f"{o.instrument.symbol} crossed above 150"
    )
    seen = False
    seen_at = factory.LazyAttribute(lambda o: timezone.now() if o.seen else None)


class RuleFormFactory(factory.DictFactory):
    """What the alert rule page posts for a price rule on AAPL above 150."""

    symbol = "aapl"
    kind = "price"
    direction = "above"
    level = "150"
    hysteresis = "0"
    timeframe = ""
    period = ""
    fast_period = ""
    slow_period = ""
    ma_type = ""
    cooldown_seconds = "300"
    active = "on"
    note = "breakout"
    action = "save"
