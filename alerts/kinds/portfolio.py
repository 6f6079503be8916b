"""Portfolio value: the owner's open positions' market value, or their day
P/L, crossing a level. Values are those of `portfolio.selectors.
portfolio_value` (quantity × last; day P/L by `portfolio.ledger.day_pl`
against each instrument's previous close); the engine evaluates them on
every trade of a held instrument (see `alerts.engine.portfolio`)."""

from __future__ import annotations

from alerts.kinds import Kind, arrow, plain, verb
from alerts.kinds.levels import band_text, check_band

MEASURES = {"value": "Market value", "day_pl": "Day P/L"}


class PortfolioValueKind(Kind):
    name = "portfolio_value"
    label = "Portfolio value or day P/L crosses a level"
    fields = ("measure", "level", "hysteresis")
    source = "portfolio"
    needs_instrument = False
    banded = True

    def check(self, values, err) -> None:
        if values.measure not in MEASURES:
            err("measure", "Choose what to watch: market value or day P/L.")
        if values.level is None:
            err("level", "Enter a level.")
        elif values.measure == "value" and values.level <= 0:
            err("level", "A portfolio value level must be greater than 0.")
        check_band(values, err, level_limit=values.measure == "value")

    def describe(self, values) -> str:
        what = "portfolio value" if values.measure == "value" else "portfolio day P/L"
        text = f"{what} crosses {arrow(values.direction)} {plain(values.level)}"
        return text + band_text(values)

    def series_key(self, rule) -> tuple:
        return ("portfolio", rule.owner_id, rule.measure)

    def message(self, fire) -> tuple[str, dict]:
        rule = fire.rule
        what = "Portfolio value" if rule.measure == "value" else "Portfolio day P/L"
        text = (
            f"{what} {fire.value:,.2f} {verb(rule.direction)} "
            f"{plain(round(rule.level, 8))}"
        )
        return text, {"measure": rule.measure}


KINDS = (PortfolioValueKind(),)
