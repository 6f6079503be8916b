"""Price and change-% kinds: the last trade's price, or its change in %
against the previous close, crossing a level (with a re-arm band)."""

from __future__ import annotations

from decimal import Decimal

from alerts.kinds import ABOVE, Kind, arrow, fmt, plain, verb


def check_band(values, err, *, level_limit: bool) -> None:
    band = values.hysteresis if values.hysteresis is not None else Decimal(0)
    if band < 0:
        err("hysteresis", "The re-arm band cannot be negative.")
    elif (
        level_limit
        and values.level is not None
        and band
        and values.direction == ABOVE
        and band >= values.level
    ):
        err("hysteresis", "The re-arm band must be smaller than the level.")


def band_text(values) -> str:
    return f" (re-arm band {plain(values.hysteresis)})" if values.hysteresis else ""


class PriceKind(Kind):
    name = "price"
    label = "Price crosses a level"
    fields = ("level", "hysteresis")
    banded = True

    def check(self, values, err) -> None:
        if values.level is None:
            err("level", "Enter a level.")
        elif values.level <= 0:
            err("level", "A price level must be greater than 0.")
        check_band(values, err, level_limit=True)

    def describe(self, values) -> str:
        text = f"price crosses {arrow(values.direction)} {plain(values.level)}"
        return text + band_text(values)

    def message(self, fire) -> tuple[str, dict]:
        rule = fire.rule
        text = f"{fire.symbol} {verb(rule.direction)} {fmt(rule.level)}"
        return f"{text} (last {fire.price_text})", {}


class ChangeKind(Kind):
    name = "change_pct"
    label = "Change % vs previous close"
    fields = ("level", "hysteresis")
    banded = True

    def check(self, values, err) -> None:
        level = values.level
        if level is None:
            err("level", "Enter a level.")
        elif level == 0:
            err("level", "Enter a non-zero percent, e.g. 3 or -3.")
        elif not Decimal(-100) < level <= Decimal(10000):
            err("level", "The percent must be above -100 and at most 10000.")
        check_band(values, err, level_limit=False)

    def describe(self, values) -> str:
        text = (
            f"change vs previous close crosses {arrow(values.direction)} "
            f"{plain(values.level)}%"
        )
        return text + band_text(values)

    def message(self, fire) -> tuple[str, dict]:
        rule = fire.rule
        text = (
            f"{fire.symbol} change {fire.value:+.2f}% {verb(rule.direction)} "
            f"{fmt(rule.level)}% (last {fire.price_text})"
        )
        return text, {"prev_close": fire.prev_close}


KINDS = (PriceKind(), ChangeKind())
