"""The demo's alert rules (`manage.py demo_setup`): one of each kind on the
demo watchlists, so the alert engine, toasts, the unseen badge, history,
email and the dry run are visible before anyone builds a rule.

The two BTC/USD price rules are placed a small distance above and below the
price at setup time (the provider's snapshot, else the latest stored close,
never a fixed number), so one of them fires within the first minutes of
`make demo`, and emails (the console backend prints it in the `worker`
process's output). Running setup again replaces the demo rules, so
their levels follow the price.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from alerts.models import AlertRule, Direction, RuleKind
from alerts.services import alert_rule_create, alert_rule_delete
from marketdata.models import Bar, Instrument
from marketdata.selectors import instruments_by_symbol

logger = logging.getLogger(__name__)

DEMO_NOTE = "Demo rule (demo_setup)"
#: price rules sit this fraction above and below the price: about half of a
#: typical minute's move of a crypto (3 % a day ~ 0.08 % a minute)
PRICE_DISTANCE = Decimal("0.0005")
PRICED_SYMBOL = "BTC/USD"
# The other kinds, each on a demo watchlist instrument.
OTHER_RULES = [
    (
        "NVDA",
        {"kind": RuleKind.CHANGE_PCT, "direction": Direction.BELOW, "level": -3},
    ),
    (
        "AAPL",
        {
            "kind": RuleKind.RSI,
            "direction": Direction.ABOVE,
            "level": 70,
            "timeframe": "1m",
            "period": 14,
        },
    ),
    (
        "ETH/USD",
        {
            "kind": RuleKind.MA_CROSS,
            "direction": Direction.ABOVE,
            "timeframe": "1m",
            "fast_period": 9,
            "slow_period": 21,
            "ma_type": "ema",
        },
    ),
    (
        "SOL/USD",
        {
            "kind": RuleKind.VOLUME_SPIKE,
            "direction": Direction.ABOVE,
            "level": 3,
            "period": 30,
        },
    ),
]


def current_price(instrument: Instrument) -> Decimal | None:
    """The price now: the primary provider's snapshot, else the latest stored
    minute (or daily) close; None when neither is known."""
    from marketdata.providers.base import ProviderError
    from marketdata.providers.routing import primary_name, provider_build

    try:
        provider = provider_build(
            name=primary_name(instrument.asset_class), instruments=[instrument]
        )
        snapshot = provider.fetch_snapshots([instrument.symbol]).get(instrument.symbol)
    except (ProviderError, OSError, ValueError) as exc:
        logger.info("demo rules: no snapshot of %s (%s)", instrument.symbol, exc)
        snapshot = None
    if snapshot is not None and snapshot.last:
        return Decimal(snapshot.last)
    close = (
        Bar.objects.filter(instrument=instrument)
        .order_by("-ts")
        .values_list("close", flat=True)
        .first()
    )
    return None if close is None else Decimal(close)


def _on_tick(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).quantize(Decimal(1), ROUND_HALF_UP) * increment


def demo_alert_rules_seed(*, user) -> list[AlertRule]:
    """Replace `user`'s demo rules (see the module docstring). Returns them."""
    instruments = instruments_by_symbol(
        symbols=[PRICED_SYMBOL, *(symbol for symbol, _ in OTHER_RULES)]
    )
    btc = instruments.get(PRICED_SYMBOL)
    price = current_price(btc) if btc is not None else None
    rules: list[AlertRule] = []
    with transaction.atomic():
        for rule in AlertRule.objects.filter(owner=user, note=DEMO_NOTE):
            alert_rule_delete(rule=rule)
        if price is not None:
            step = price * PRICE_DISTANCE
            for direction, level in (
                (Direction.ABOVE, price + step),
                (Direction.BELOW, price - step),
            ):
                rules.append(
                    alert_rule_create(
                        owner=user,
                        instrument=btc,
                        kind=RuleKind.PRICE,
                        direction=direction,
                        level=_on_tick(level, btc.price_increment),
                        cooldown_seconds=300,
                        notify_email=True,
                        note=DEMO_NOTE,
                    )
                )
        for symbol, fields in OTHER_RULES:
            if symbol in instruments:
                rules.append(
                    alert_rule_create(
                        owner=user,
                        instrument=instruments[symbol],
                        cooldown_seconds=900,
                        note=DEMO_NOTE,
                        **fields,
                    )
                )
    return rules
