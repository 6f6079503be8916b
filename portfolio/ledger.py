"""The arithmetic of a position: its transactions folded in (date, id) order.

Method (weighted average cost, as most brokers report it):

- A buy of q at p with fee f adds q to the quantity and q·p + f to the cost
  of the held quantity; the average cost is that cost / quantity.
- A sell of q at p with fee f removes q and the same share of the cost
  (q × average cost); realized P/L grows by q·p − f − q × average cost. The
  average cost of what is left does not change. A sell of more than is held
  is refused (`Oversold`).
- A stand-alone fee (custody, data, a broker charge) is realized P/L − f.
- Unrealized P/L = quantity × (last − average cost).
- Day P/L = value now − value at the previous close − the day's cash paid in
  + the day's cash taken out, i.e. quantity held at the start of the
  session × (last − previous close) plus, for the session's own trades,
  (last − buy price) and (sell price − previous close), less their fees.
- % return = (realized + unrealized) / invested, where invested is what every
  buy cost including its fee: a closed position keeps its return.

Pure functions on Decimals; no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # "buy" | "sell" | "fee"
    date: date
    quantity: Decimal = ZERO
    price: Decimal = ZERO
    fee: Decimal = ZERO


class Oversold(ValueError):
    """A sell of more than the quantity held at that point."""

    def __init__(self, *, entry: Entry, held: Decimal, index: int) -> None:
        self.entry, self.held, self.index = entry, held, index
        super().__init__(
            f"The sell of {_text(entry.quantity)} on {entry.date.isoformat()} is "
            f"more than the {_text(held)} held then; a quantity cannot go "
            "below zero."
        )


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


@dataclass(slots=True)
class Holding:
    quantity: Decimal = ZERO
    cost: Decimal = ZERO  # of the quantity held, buy fees included
    realized: Decimal = ZERO
    invested: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def average_cost(self) -> Decimal:
        return self.cost / self.quantity if self.quantity else ZERO

    def apply(self, entry: Entry, *, index: int = 0) -> None:
        self.fees += entry.fee
        if entry.kind == "buy":
            spent = entry.quantity * entry.price + entry.fee
            self.quantity += entry.quantity
            self.cost += spent
            self.invested += spent
        elif entry.kind == "sell":
            if entry.quantity > self.quantity:
                raise Oversold(entry=entry, held=self.quantity, index=index)
            if entry.quantity == self.quantity:
                released = self.cost
            else:
                released = self.cost * entry.quantity / self.quantity
            self.quantity -= entry.quantity
            self.cost -= released
            self.realized += entry.quantity * entry.price - entry.fee - released
        elif entry.kind == "fee":
            self.realized -= entry.fee
        else:
            raise ValueError(f"Unknown transaction kind {entry.kind!r}.")


def fold(entries: Iterable[Entry], *, start: Holding | None = None) -> Holding:
    """The holding after `entries` (in the order given); raises `Oversold`."""
    holding = start or Holding()
    for index, entry in enumerate(entries):
        holding.apply(entry, index=index)
    return holding


def cash_flow(entry: Entry) -> Decimal:
    """Cash the entry brings in (positive) or pays out (negative)."""
    if entry.kind == "buy":
        return -(entry.quantity * entry.price + entry.fee)
    if entry.kind == "sell":
        return entry.quantity * entry.price - entry.fee
    return -entry.fee


def day_split(entries: Iterable[Entry], *, day: date) -> tuple[Decimal, Decimal]:
    """(quantity held before `day`, net cash flow of the entries dated `day`
    or later): what day P/L needs besides prices."""
    before, flow = ZERO, ZERO
    for entry in entries:
        if entry.date < day:
            if entry.kind == "buy":
                before += entry.quantity
            elif entry.kind == "sell":
                before -= entry.quantity
        else:
            flow += cash_flow(entry)
    return before, flow


def day_pl(
    *,
    quantity: Decimal,
    held_before: Decimal,
    flow: Decimal,
    last: Decimal | None,
    prev_close: Decimal | None,
) -> Decimal | None:
    """Value now − value at the previous close + the session's cash flow;
    None when a price it needs is missing."""
    if last is None:
        return None
    if prev_close is None:
        if held_before:
            return None
        prev_close = ZERO
    return quantity * last - held_before * prev_close + flow
