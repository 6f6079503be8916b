"""Volume spike: the current minute's volume over the average of the last
`period` closed minutes, against the multiple `level` (above only)."""

from __future__ import annotations

from decimal import Decimal

from alerts.kinds import ABOVE, Kind, fmt, plain


class VolumeSpikeKind(Kind):
    name = "volume_spike"
    label = "Volume spike"
    fields = ("level", "period")
    source = "volume"

    def check(self, values, err) -> None:
        level = values.level
        if level is None:
            err("level", "Enter a level.")
        elif not Decimal(1) <= level <= Decimal(1000):
            err("level", "The volume multiple must be between 1 and 1000.")
        if values.direction != ABOVE:
            err("direction", "A volume spike can only cross above.")
        if values.period is None or not 1 <= values.period <= 1440:
            err("period", "Average over 1 to 1440 minutes.")

    def describe(self, values) -> str:
        return (
            f"minute volume ≥ {plain(values.level)}× the average of the last "
            f"{values.period} minutes"
        )

    def series_key(self, rule) -> tuple:
        return ("volume", rule.period)

    def history(self, rule) -> dict[int, int]:
        return {1: int(rule.period or 1)}

    def level_of(self, rule) -> float | None:
        return rule.level

    def message(self, fire) -> tuple[str, dict]:
        rule = fire.rule
        text = (
            f"{fire.symbol} minute volume {fmt(fire.volume)} is {fire.value:.1f}× "
            f"the {rule.period}-minute average"
        )
        values = {"volume": fire.volume, "average": fire.average}
        return text, {**values, "period": rule.period}


KINDS = (VolumeSpikeKind(),)
