"""The server's number formatting on the table `static/js/format.js` is tested
on too (tests/e2e/test_dashboard.py): one rounding rule on both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.quotes import fmt_compact, fmt_pct, fmt_price, fmt_signed, fmt_spread

ROWS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "rounding.json").read_text()
)["rows"]


def formatted(row: dict) -> str:
    if row["fn"] == "price":
        return fmt_price(row["value"], row["places"])
    if row["fn"] == "signed":
        return fmt_signed(row["value"], row["places"])
    if row["fn"] == "spread":
        return fmt_spread(*row["value"], row["places"])
    return {"pct": fmt_pct, "compact": fmt_compact}[row["fn"]](row["value"])


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['fn']}({r['value']!r})")
def test_server_formats_each_value_as_the_table_says(row):
    assert formatted(row) == row["text"]
