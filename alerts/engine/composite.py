"""State the engine keeps beyond one instrument: an owner's portfolio
(`PortfolioState`) and a multi-condition rule (`Composite`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from alerts.kinds import OPTIONAL_FIELDS, kind_get
from portfolio.ledger import day_pl


class PortfolioState:
    """An owner's holdings as `portfolio.selectors.portfolio_terms` gives them
    and the instruments that price them. Market value and day P/L are those
    of `portfolio.selectors.portfolio_value`: quantity × last, and
    `portfolio.ledger.day_pl` per position, summed; None until every position
    has a price (a sum over part of the book would jump when the rest arrives)."""

    __slots__ = ("owner_id", "terms", "instruments", "series", "own_epoch")

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self.terms: list = []
        self.instruments: list = []
        self.series: dict[str, object] = {}
        self.own_epoch = 0

    @property
    def symbol(self) -> str:
        return ""

    @property
    def live(self) -> bool:
        return all(inst.live for inst in self.instruments)

    @property
    def epoch(self) -> int:
        return self.own_epoch + sum(inst.epoch for inst in self.instruments)

    def values(self) -> dict[str, float | None]:
        value = day = Decimal(0)
        day_known = True
        for term, inst in zip(self.terms, self.instruments, strict=True):
            last = inst.price_decimal
            if last is None:
                return {"value": None, "day_pl": None}
            value += term.quantity * last
            pl = day_pl(
                quantity=term.quantity,
                held_before=term.held_before,
                flow=term.flow,
                last=last,
                prev_close=inst.prev_close_decimal,
            )
            if pl is None:
                day_known = False
            else:
                day += pl
        return {"value": float(value), "day_pl": float(day) if day_known else None}


class Composite:
    """A multi-condition rule's evaluation state (see `alerts.kinds.multi`).

    `state` is the expression's last value: None until every level condition
    has seen a value, so the first evaluation is a baseline, never a fire.
    """

    __slots__ = ("rule", "events", "until", "contexts", "state")

    def __init__(self, rule, contexts: list) -> None:
        self.rule = rule
        self.events = [kind_get(sub.kind).event for sub in rule.conditions_engine]
        self.until: list[datetime | None] = [None] * len(self.events)
        #: per condition: the InstrumentState or PortfolioState it reads
        self.contexts = contexts
        self.state: bool | None = None

    def truths(self, ts: datetime) -> list[bool] | None:
        result = []
        for sub, event, until in zip(
            self.rule.conditions_engine, self.events, self.until, strict=True
        ):
            if event:
                result.append(until is not None and ts < until)
            elif not sub.slot:
                return None
            else:
                result.append(sub.slot.endswith("waiting"))
        return result

    def evaluate(self, ts: datetime) -> tuple[bool | None, bool | None]:
        """(previous state, new state); the state is stored."""
        truths = self.truths(ts)
        if truths is None:
            value = None
        elif self.rule.combine == "or":
            value = any(truths)
        else:
            value = all(truths)
        previous, self.state = self.state, value
        return previous, value

    @property
    def live(self) -> bool:
        return all(ctx.live for ctx in self.contexts)

    def met(self, ts: datetime) -> list:
        """The conditions true now, as `MetCondition`s for the message."""
        from alerts.engine.messages import MetCondition

        truths = self.truths(ts) or []
        met = []
        for sub, truth, ctx in zip(
            self.rule.conditions_engine, truths, self.contexts, strict=False
        ):
            if not truth:
                continue
            kind = kind_get(sub.kind)
            text = _describe(kind, sub)
            if ctx.symbol:
                text = f"{ctx.symbol} {text}"
            series = sub.series
            value = getattr(series, "value", None) if series is not None else None
            met.append(
                MetCondition(
                    text=text,
                    values={"kind": sub.kind, "symbol": ctx.symbol, "value": value},
                )
            )
        return met


def _describe(kind, sub) -> str:
    """The kind's wording for an engine rule (which has `band`, not
    `hysteresis`, and float levels)."""
    from types import SimpleNamespace

    values = SimpleNamespace(
        **{name: getattr(sub, name, None) for name in _FIELDS},
        hysteresis=Decimal(str(sub.band)) if sub.band else Decimal(0),
        level=Decimal(str(sub.level)),
    )
    return kind.describe(values)


# A condition's own fields (level and band come from the condition as numbers).
_FIELDS = (
    "direction",
    *(
        name
        for name in OPTIONAL_FIELDS
        if name not in ("level", "hysteresis", "combine", "conditions")
    ),
)
