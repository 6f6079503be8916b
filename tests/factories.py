"""factory_boy factories for what tests build most: users, instruments,
watchlists, positions, alert rules and the alerts they fire, the rule form
the pages post, the live snapshot documents the worker stores, and rows of
minute bars for `bars_upsert`.

Rows with a service go through it (`watchlist_create`, `alert_rule_create`):
a factory never builds what the application could not. Instruments come from
the universe (`marketdata.universe`) by symbol, as the `instruments` fixture
loads them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from factory.django import DjangoModelFactory, Password

from alerts.models import AlertEvent, AlertRule
from marketdata.models import Instrument, Position, Watchlist
from marketdata.services import BarRow

PASSWORD = "s3cret-pass"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()

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
    rule on AAPL, above 150 (the model's default cooldown)."""

    class Meta:
        model = AlertRule

    owner = factory.SubFactory(UserFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    kind = "price"
    direction = "above"
    level = Decimal(150)

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
    values = factory.LazyFunction(
        lambda: {"value": 150.5, "level": 150.0, "direction": "above"}
    )
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


class SnapshotFactory(factory.DictFactory):
    """A live snapshot document as the stream worker stores it
    (`streaming.snapshots`), received now; give `snapshots_put` a list."""

    symbol = "AAPL"
    seq = 1
    ts = factory.LazyFunction(lambda: datetime.now(UTC).isoformat())
    received_at = factory.LazyFunction(time.time)
    last = "100"
    bid = None
    ask = None
    open = None
    high = None
    low = None
    volume = None
    prev_close = None
    change = None
    change_pct = None
    freshness = "live"
    minute = None


class BarRowFactory(factory.Factory):
    """A row for `marketdata.services.bars_upsert`: a flat one-minute bar at
    `close` unless open, high or low are given."""

    class Meta:
        model = BarRow

    instrument_id = factory.LazyFunction(lambda: InstrumentFactory().pk)
    timeframe = "1m"
    ts = factory.LazyFunction(lambda: timezone.now().replace(second=0, microsecond=0))
    close = Decimal(100)
    open = factory.SelfAttribute("close")
    high = factory.SelfAttribute("close")
    low = factory.SelfAttribute("close")
    volume = Decimal(100)


def minute_bars(
    instrument, closes, *, start, volumes=None, highs=None, spread=Decimal(0)
) -> list[BarRow]:
    """One minute bar a close from `start` on: high and low `spread` around
    the close (`highs[i]`, when given and set, is bar i's high)."""
    rows = []
    for i, close in enumerate(closes):
        price = Decimal(str(close))
        high = price + spread
        if highs and highs[i]:
            high = Decimal(str(highs[i]))
        rows.append(
            BarRowFactory(
                instrument_id=instrument.pk,
                ts=start + timedelta(minutes=i),
                close=price,
                high=high,
                low=price - spread,
                volume=Decimal(volumes[i] if volumes else 100),
            )
        )
    return rows
