"""The engine's rules and its sorted index (`CrossSeries`).

Per tracked value a `CrossSeries` keeps its rules in four sorted lists:
armed and waiting, for "above" and for "below". When the value moves from
`prev` to `cur`, only rules whose level lies between the two are touched
(bisect), so an update costs O(log rules + rules that change state).

Cross semantics: an "above" rule fires when the value goes from below its
level to at or above it (level in (prev, cur]); it then waits until the value
drops below `level - hysteresis` before it can fire again. A rule whose value
is already beyond the level when it is placed starts waiting, so it never
fires for a cross it did not see. Conditions of multi-condition rules sit in
the same lists: "waiting" is "true"; their moves are collected in `flipped`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime

from alerts.kinds import ABOVE, kind_get


@dataclass(slots=True, eq=False)
class EngineRule:
    """A rule (or one condition of a multi rule) as the engine holds it."""

    id: int
    owner_id: int
    instrument_id: int
    symbol: str
    kind: str
    direction: str
    level: float
    band: float = 0.0
    timeframe: str = ""
    period: int | None = None
    fast_period: int | None = None
    slow_period: int | None = None
    ma_type: str = ""
    measure: str = ""
    pattern: str = ""
    anomaly: str = ""
    combine: str = ""
    cooldown: float = 0.0
    one_shot: bool = False
    notify_email: bool = False
    note: str = ""
    last_fired: datetime | None = None
    #: multi rules: their conditions; conditions: their rule and position
    conditions_engine: list[EngineRule] = field(default_factory=list, repr=False)
    parent: object = field(default=None, repr=False)
    index: int = 0
    # Index bookkeeping: which list of which series holds the rule, under what key.
    series: CrossSeries | None = field(default=None, repr=False)
    slot: str = ""
    key: float = 0.0

    @property
    def spec(self):
        return kind_get(self.kind)

    @property
    def series_key(self) -> tuple:
        return kind_get(self.kind).series_key(self)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Instruments the rule reads (a portfolio's come from its positions)."""
        if self.conditions_engine:
            return tuple(
                dict.fromkeys(c.symbol for c in self.conditions_engine if c.symbol)
            )
        return (self.symbol,) if self.symbol else ()

    @property
    def home(self) -> str:
        """The symbol whose shard evaluates the rule: its instrument, the
        first condition's instrument, else "portfolio:<owner>"."""
        symbols = self.symbols
        return symbols[0] if symbols else f"portfolio:{self.owner_id}"

    def signature(self) -> tuple:
        """What decides where the rule sits in the index."""
        if self.conditions_engine:
            return (
                self.combine,
                tuple(c.signature() for c in self.conditions_engine),
            )
        return (
            self.symbol,
            self.kind,
            self.series_key,
            self.direction,
            self.level,
            self.band,
            self.pattern,
            self.anomaly,
        )

    @classmethod
    def from_row(cls, row: dict) -> EngineRule:
        level = row.get("level")
        kind = row["kind"]
        rule = cls(
            id=row["id"],
            owner_id=row["owner_id"],
            instrument_id=row.get("instrument_id") or 0,
            symbol=row.get("symbol") or "",
            kind=kind,
            direction=row.get("direction") or ABOVE,
            level=0.0 if kind == "ma_cross" or level in (None, "") else float(level),
            band=float(row.get("hysteresis") or 0),
            timeframe=row.get("timeframe") or "",
            period=_int(row.get("period")),
            fast_period=_int(row.get("fast_period")),
            slow_period=_int(row.get("slow_period")),
            ma_type=row.get("ma_type") or "",
            measure=row.get("measure") or "",
            pattern=row.get("pattern") or "",
            anomaly=row.get("anomaly") or "",
            combine=row.get("combine") or "",
            cooldown=float(row.get("cooldown_seconds") or 0),
            one_shot=bool(row.get("one_shot")),
            notify_email=bool(row.get("notify_email")),
            note=row.get("note") or "",
            last_fired=row.get("last_fired_at"),
        )
        if kind == "multi":
            for index, condition in enumerate(row.get("conditions") or []):
                sub = cls.from_row(
                    {
                        **condition,
                        "id": -(rule.id * 8 + index + 1),
                        "owner_id": rule.owner_id,
                    }
                )
                sub.index = index
                rule.conditions_engine.append(sub)
        return rule


def _int(value) -> int | None:
    return None if value in (None, "") else int(value)


class Slot:
    """Rules sorted by key: parallel lists, so bisect compares plain floats."""

    __slots__ = ("keys", "ids")

    def __init__(self) -> None:
        self.keys: list[float] = []
        self.ids: list[int] = []

    def __len__(self) -> int:
        return len(self.keys)

    def insert(self, key: float, rule_id: int) -> None:
        index = bisect_right(self.keys, key)
        self.keys.insert(index, key)
        self.ids.insert(index, rule_id)

    def delete(self, key: float, rule_id: int) -> None:
        keys, ids = self.keys, self.ids
        index = bisect_left(keys, key)
        while index < len(keys) and keys[index] == key:
            if ids[index] == rule_id:
                del keys[index]
                del ids[index]
                return
            index += 1

    def take(self, low: float, high: float, right: bool) -> list[int]:
        """Remove and return ids with key in (low, high] (right=True) or
        [low, high) (right=False)."""
        keys = self.keys
        if right:
            start = bisect_right(keys, low)
            if start == len(keys) or keys[start] > high:
                return []
            stop = bisect_right(keys, high, start)
        else:
            start = bisect_left(keys, low)
            if start == len(keys) or keys[start] >= high:
                return []
            stop = bisect_left(keys, high, start)
        taken = self.ids[start:stop]
        del keys[start:stop]
        del self.ids[start:stop]
        return taken


class CrossSeries:
    """One tracked value and the rules watching it (event kinds keep their
    rules in `rules` only: nothing to cross)."""

    __slots__ = (
        "value",
        "epoch",
        "up_armed",
        "up_waiting",
        "down_armed",
        "down_waiting",
        "rules",
        "pending",
        "flipped",
    )

    def __init__(self) -> None:
        self.value: float | None = None
        self.epoch = 0
        # Armed: key = level. Waiting: key = the level the value must pass
        # back over to re-arm (level -/+ hysteresis).
        self.up_armed = Slot()
        self.up_waiting = Slot()
        self.down_armed = Slot()
        self.down_waiting = Slot()
        self.rules: dict[int, EngineRule] = {}
        self.pending: set[int] = set()
        #: conditions whose state changed in the last update
        self.flipped: list[EngineRule] = []

    def __len__(self) -> int:
        return len(self.rules)

    def _place(self, rule: EngineRule, slot: str, key: float) -> None:
        rule.slot, rule.key = slot, key
        getattr(self, slot).insert(key, rule.id)
        if rule.parent is not None:
            self.flipped.append(rule)

    def _classify(self, rule: EngineRule, value: float) -> None:
        """Place a rule seeing `value` for the first time (no fire)."""
        if rule.direction == ABOVE:
            if value < rule.level:
                self._place(rule, "up_armed", rule.level)
            else:
                self._place(rule, "up_waiting", rule.level - rule.band)
        else:
            if value > rule.level:
                self._place(rule, "down_armed", rule.level)
            else:
                self._place(rule, "down_waiting", rule.level + rule.band)

    def add(self, rule: EngineRule) -> None:
        rule.series = self
        self.rules[rule.id] = rule
        if self.value is None:
            rule.slot = ""
            self.pending.add(rule.id)
        else:
            self._classify(rule, self.value)

    def remove(self, rule: EngineRule) -> None:
        self.rules.pop(rule.id, None)
        if rule.slot:
            getattr(self, rule.slot).delete(rule.key, rule.id)
        else:
            self.pending.discard(rule.id)
        rule.series, rule.slot = None, ""

    def update(self, value: float) -> list[EngineRule]:
        """Set a new value; return the rules whose level it crossed."""
        previous = self.value
        self.value = value
        if previous is None:
            if self.pending:
                for rule_id in self.pending:
                    self._classify(self.rules[rule_id], value)
                self.pending.clear()
            return []
        if value > previous:
            crossed = self._move(self.up_armed, previous, value, True, "up_waiting")
            if self.down_waiting.keys:
                self._move(self.down_waiting, previous, value, False, "down_armed")
            return crossed
        if value < previous:
            crossed = self._move(
                self.down_armed, value, previous, False, "down_waiting"
            )
            if self.up_waiting.keys:
                self._move(self.up_waiting, value, previous, True, "up_armed")
            return crossed
        return []

    def _move(
        self, entries: Slot, low: float, high: float, right: bool, to: str
    ) -> list[EngineRule]:
        """Move the rules with key in (low, high] (right=True) or [low, high)
        (right=False) to slot `to`; return them."""
        if not entries.keys:
            return []
        taken = entries.take(low, high, right)
        if not taken:
            return []
        moved = [self.rules[rule_id] for rule_id in taken]
        for rule in moved:
            if to == "up_waiting":
                key = rule.level - rule.band
            elif to == "down_waiting":
                key = rule.level + rule.band
            else:
                key = rule.level
            self._place(rule, to, key)
        return moved
