"""Multi-condition rules: up to five conditions joined by one operator (AND
or OR), over one or several instruments, each condition any other kind.

Stored in `AlertRule.conditions` as a list of dicts, one per condition::

    {"kind": "price", "symbol": "AAPL", "instrument_id": 3,
     "direction": "above", "level": "150", "hysteresis": "0"}

with the fields its kind uses (strings for decimals). A condition's truth:
a level kind is true while its value is beyond the level (true from the
cross, false again once the value has moved back past level ∓ band, the same
armed/waiting states as a single rule); a portfolio condition likewise on the
owner's portfolio; an event kind (pattern, anomaly) is true for the bar of
its timeframe (pattern) or the minute (anomaly) it happens in. The rule fires
once when the whole expression goes from false to true, then not again until
it has been false; the cooldown applies on top. It never fires on the first
evaluation (start-up, edit) nor while any of its instruments is stale.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from types import SimpleNamespace

from alerts.kinds import ABOVE, BELOW, EMPTY, Kind, kind_get

MAX_CONDITIONS = 5
MIN_CONDITIONS = 2
COMBINE = {"and": "all of", "or": "any of"}
DECIMAL_FIELDS = ("level", "hysteresis")
INT_FIELDS = ("period", "fast_period", "slow_period")


def condition_values(raw: dict, *, owner_id: int | None = None):
    """A condition dict as an object with the rule's attribute names (typed);
    ValueError naming the field when a number does not parse."""
    values = SimpleNamespace(
        kind=raw.get("kind") or "",
        symbol=(raw.get("symbol") or "").strip().upper(),
        instrument_id=raw.get("instrument_id"),
        direction=raw.get("direction") or ABOVE,
        owner_id=owner_id,
        **{name: raw.get(name) or EMPTY.get(name, None) for name in _TEXT_FIELDS},
    )
    for name in DECIMAL_FIELDS:
        text = raw.get(name)
        try:
            value = None if text in (None, "") else Decimal(str(text))
        except InvalidOperation:
            raise ValueError(f"{_label(name)} must be a number.") from None
        if value is not None and not value.is_finite():
            raise ValueError(f"{_label(name)} must be a number.")
        setattr(values, name, value)
    if values.hysteresis is None:
        values.hysteresis = Decimal(0)
    for name in INT_FIELDS:
        text = raw.get(name)
        try:
            setattr(values, name, None if text in (None, "") else int(text))
        except (TypeError, ValueError):
            raise ValueError(f"{_label(name)} must be a whole number.") from None
    return values


_TEXT_FIELDS = ("timeframe", "ma_type", "measure", "pattern", "anomaly")


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def conditions_clean(conditions, *, owner_id: int | None = None) -> list[dict]:
    """Check and normalize a rule's conditions. Raises ValueError with every
    problem as "Condition N: …" lines (N counts from 1)."""
    from alerts.selectors import instruments_by_symbol

    if not isinstance(conditions, list):
        raise ValueError("The conditions must be a list.")
    problems: list[str] = []
    if not MIN_CONDITIONS <= len(conditions) <= MAX_CONDITIONS:
        problems.append(
            f"A multi-condition rule needs {MIN_CONDITIONS} to {MAX_CONDITIONS} "
            f"conditions (it has {len(conditions)})."
        )
    symbols = {
        str(c.get("symbol") or "").strip().upper()
        for c in conditions
        if isinstance(c, dict)
    }
    instruments = instruments_by_symbol(symbols=symbols - {""})
    cleaned: list[dict] = []
    for number, raw in enumerate(conditions, start=1):
        messages: list[str] = []
        try:
            cleaned.append(_condition_clean(raw, instruments, messages, owner_id))
        except ValueError as exc:
            messages.append(str(exc))
        problems.extend(f"Condition {number}: {m}" for m in messages)
    if problems:
        raise ValueError("\n".join(problems))
    return cleaned


def _condition_clean(raw, instruments, messages: list[str], owner_id) -> dict:
    if not isinstance(raw, dict):
        raise ValueError("not a condition (expected an object with a kind).")
    name = raw.get("kind") or ""
    try:
        kind = kind_get(name)
    except KeyError:
        raise ValueError(f"unknown kind {name!r}.") from None
    if not kind.condition:
        raise ValueError(f"a {kind.label.lower()} rule cannot be a condition.")
    values = condition_values(raw, owner_id=owner_id)
    if values.direction not in (ABOVE, BELOW):
        messages.append("Choose a direction: above or below.")
    instrument = None
    if kind.needs_instrument:
        if not values.symbol:
            messages.append("Enter a symbol.")
        else:
            instrument = instruments.get(values.symbol)
            if instrument is None:
                if raw.get("instrument_id"):
                    messages.append(
                        f"the instrument {values.symbol} was deleted; pick "
                        "another symbol or remove this condition."
                    )
                else:
                    messages.append(f"unknown symbol {values.symbol!r}.")
    kind.check(values, lambda _field, message: messages.append(message))
    if instrument is not None and not messages and hasattr(kind, "check_data"):
        kind.check_data(
            values, instrument, lambda _field, message: messages.append(message)
        )
    if messages:
        return {}
    result: dict = {"kind": name, "direction": values.direction}
    if instrument is not None:
        result["symbol"] = instrument.symbol
        result["instrument_id"] = instrument.pk
    for field in kind.fields:
        value = getattr(values, field)
        if isinstance(value, Decimal):
            value = format(value.normalize(), "f")
        result[field] = value
    return result


class MultiKind(Kind):
    name = "multi"
    label = "Several conditions (AND / OR)"
    fields = ("combine", "conditions")
    directional = False
    source = "multi"
    needs_instrument = False
    condition = False

    def check(self, values, err) -> None:
        if values.combine not in COMBINE:
            err("combine", "Choose how conditions combine: and / or.")
        try:
            values.conditions = conditions_clean(
                values.conditions, owner_id=getattr(values, "owner_id", None)
            )
        except ValueError as exc:
            for line in str(exc).splitlines():
                err("conditions", line)

    def describe(self, values) -> str:
        parts = []
        for raw in values.conditions or []:
            try:
                item = condition_values(raw)
                kind = kind_get(item.kind)
            except (KeyError, ValueError):
                parts.append("?")
                continue
            text = kind.describe(item)
            parts.append(f"{item.symbol} {text}" if kind.needs_instrument else text)
        joiner = " AND " if values.combine == "and" else " OR "
        return joiner.join(parts) or "no conditions"

    def symbols(self, conditions) -> list[str]:
        return [c["symbol"] for c in conditions or [] if c.get("symbol")]

    def history(self, rule) -> dict[int, int]:
        wants: dict[int, int] = {}
        for sub in rule.conditions_engine:
            for minutes, bars in kind_get(sub.kind).history(sub).items():
                wants[minutes] = max(wants.get(minutes, 0), bars)
        return wants

    def message(self, fire) -> tuple[str, dict]:
        rule = fire.rule
        joiner = " and " if rule.combine == "and" else " or "
        parts = [c.text for c in fire.event] if fire.event else []
        text = f"All of: {joiner.join(parts)}" if rule.combine == "and" else None
        if text is None:
            text = f"Any of: {joiner.join(parts)}"
        return text, {"conditions": [c.values for c in fire.event or []]}


KINDS = (MultiKind(),)
