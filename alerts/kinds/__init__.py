"""The alert rule kinds: each kind's facts in one place.

A kind (`Kind` subclass, one module per family) declares:

- `fields`: the optional `AlertRule` fields it uses (the others are cleared by
  `AlertRule.clean`, hidden by the form, grouped by the admin);
- `check(values, err)`: validation of those fields (`values` is a rule or a
  multi-rule condition; `err(field, message)` collects messages);
- `describe(values)`: the human wording of the condition;
- `source` and `series_key(rule)`: which value the engine tracks for it
  ("tick": last price / change %, "frame": an indicator on closed bars of a
  timeframe, "volume", "portfolio", "pattern", "anomaly", "multi");
- `history(rule)`: the warm-up it needs (bars per timeframe in minutes), used
  by the engine's seeding and by the dry run;
- `message(fire)`: the fired alert's text and kind-specific `values`.

Adding a kind is adding a module with one `Kind` subclass and listing it in
`_MODULES`. Kinds that need code not present (the pattern detector, the
anomaly detector) import it lazily: the kind still loads and validation says
the feature is unavailable.

Never imports `alerts.models` at import time (the models read this registry).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from marketdata.rollups import STEPS

ABOVE = "above"
BELOW = "below"

#: Alert timeframes: the chart timeframes below a day (one definition:
#: `marketdata.rollups.STEPS`).
TIMEFRAME_MINUTES: dict[str, int] = {
    name: int(step.total_seconds() // 60)
    for name, step in STEPS.items()
    if step.total_seconds() < 86400
}
TIMEFRAME_NAMES = {minutes: name for name, minutes in TIMEFRAME_MINUTES.items()}

# Every optional rule field, in form/admin order.
OPTIONAL_FIELDS = (
    "level",
    "hysteresis",
    "timeframe",
    "period",
    "fast_period",
    "slow_period",
    "ma_type",
    "measure",
    "pattern",
    "anomaly",
    "combine",
    "conditions",
)
# Cleared value of each optional field a kind does not use.
EMPTY: dict[str, Any] = {
    "timeframe": "",
    "ma_type": "",
    "measure": "",
    "pattern": "",
    "anomaly": "",
    "combine": "",
    "conditions": [],
}

Err = Callable[[str, str], None]


class Kind:
    """One rule kind. Subclasses set the class attributes and override what
    differs; see the module docstring."""

    name = ""
    label = ""
    fields: tuple[str, ...] = ()
    source = "tick"
    #: the rule watches one instrument (portfolio and multi rules do not)
    needs_instrument = True
    #: the value is compared with `level` (hysteresis applies)
    banded = False
    #: true only for the bar/minute it happens in (pattern, anomaly)
    event = False
    #: may be a condition of a multi-condition rule
    condition = True
    #: the rule fires on a cross above or below (events and multi rules do not)
    directional = True

    def check(self, values, err: Err) -> None:
        """Validate the kind's fields (`values` has the rule's attributes)."""

    def describe(self, values) -> str:
        return self.label

    def series_key(self, rule) -> tuple:
        return (self.name,)

    def history(self, rule) -> dict[int, int]:
        """Stored bars the rule needs to warm up: timeframe minutes -> bars."""
        return {}

    def warmup_minutes(self, rule) -> int:
        """Minutes of stored history the dry run replays before its window."""
        return max((m * bars for m, bars in self.history(rule).items()), default=0)

    def message(self, fire) -> tuple[str, dict]:
        return f"{fire.symbol} {self.label}", {}

    def level_of(self, rule) -> float | None:
        return rule.level if self.banded else None


_MODULES = (
    "alerts.kinds.levels",
    "alerts.kinds.indicators",
    "alerts.kinds.volume",
    "alerts.kinds.portfolio",
    "alerts.kinds.events",
    "alerts.kinds.multi",
)
KINDS: dict[str, Kind] = {}


def _load() -> None:
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        for kind in module.KINDS:
            KINDS[kind.name] = kind


def kind_get(name: str) -> Kind:
    """The kind called `name` (KeyError for an unknown one)."""
    if not KINDS:
        _load()
    return KINDS[name]


def kinds_all() -> list[Kind]:
    if not KINDS:
        _load()
    return list(KINDS.values())


def kind_choices() -> list[tuple[str, str]]:
    return [(kind.name, kind.label) for kind in kinds_all()]


def kind_fields() -> dict[str, tuple[str, ...]]:
    """Optional fields used by each kind (forms and admin read this)."""
    return {kind.name: kind.fields for kind in kinds_all()}


def plain(value) -> str:
    """A Decimal/float/int as plain text without exponent or trailing zeros."""
    from decimal import Decimal

    if value is None:
        return "?"
    return format(Decimal(str(value)).normalize(), "f")


def fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.8f}".rstrip("0").rstrip(".") or "0"


def verb(direction: str) -> str:
    return "crossed above" if direction == ABOVE else "crossed below"


def arrow(direction: str) -> str:
    return "above" if direction == ABOVE else "below"


def check_timeframe(values, err: Err) -> None:
    if values.timeframe not in TIMEFRAME_MINUTES:
        names = ", ".join(TIMEFRAME_MINUTES)
        err("timeframe", f"Choose a timeframe: {names}.")


def timeframe_minutes(name: str | None) -> int:
    return TIMEFRAME_MINUTES.get(name or "", 1)
