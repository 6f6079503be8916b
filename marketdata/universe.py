"""The instrument universe shipped with Tapeline (`marketdata/data/universe.csv`)."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

UNIVERSE_CSV = Path(__file__).parent / "data" / "universe.csv"
PROVIDER_COLUMNS = ("alpaca", "binance", "finnhub")


def universe_rows(path: Path = UNIVERSE_CSV) -> list[dict]:
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            rows.append(
                {
                    "symbol": record["symbol"],
                    "name": record["name"],
                    "asset_class": record["asset_class"],
                    "exchange": record["exchange"],
                    "currency": record["currency"],
                    "price_increment": Decimal(record["price_increment"]),
                    "provider_symbols": {
                        name: record[name] for name in PROVIDER_COLUMNS if record[name]
                    },
                }
            )
    return rows
