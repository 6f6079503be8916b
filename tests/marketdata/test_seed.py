from __future__ import annotations

import pytest
from django.core.management import call_command

from marketdata.models import AssetClass, Instrument

REQUIRED = "AAPL MSFT NVDA GOOGL JPM BAC V AMZN WMT MCD TSLA PLTR META AMD NFLX CRM ADBE SPY QQQ SMH DIA IWM".split()


@pytest.mark.django_db
def test_seed_instruments_loads_a_realistic_universe_idempotently():
    call_command("seed_instruments")
    first = Instrument.objects.count()
    call_command("seed_instruments")
    assert Instrument.objects.count() == first
    equities = Instrument.objects.filter(
        asset_class__in=[AssetClass.EQUITY, AssetClass.ETF]
    )
    assert equities.count() >= 100
    assert set(REQUIRED) <= set(equities.values_list("symbol", flat=True))
    btc = Instrument.objects.get(symbol="BTC/USD")
    assert btc.asset_class == AssetClass.CRYPTO
    assert btc.provider_symbol("binance") == "BTCUSDT"
    assert Instrument.objects.get(symbol="SPY").exchange == "NYSE Arca"
    assert {"ETH/USD", "SOL/USD"} <= set(
        Instrument.objects.values_list("symbol", flat=True)
    )
    for instrument in Instrument.objects.all():
        instrument.full_clean()
        assert instrument.name


@pytest.mark.django_db
def test_upsert_updates_existing_symbols_and_writes_nothing_when_a_row_is_bad():
    from django.core.exceptions import ValidationError

    from marketdata.services import instruments_upsert
    from marketdata.universe import universe_rows

    rows = universe_rows()
    assert instruments_upsert(rows=rows) == (len(rows), 0)
    renamed = [dict(row) for row in rows[:2]]
    renamed[0]["name"] = "Renamed Inc."
    renamed.append({**rows[0], "symbol": "NEWCO", "name": "New Co"})
    assert instruments_upsert(rows=renamed) == (1, 2)
    assert Instrument.objects.get(symbol=rows[0]["symbol"]).name == "Renamed Inc."
    assert Instrument.objects.get(symbol="NEWCO").name == "New Co"

    bad = [{**rows[1], "name": "Changed"}, {**rows[0], "symbol": "bad symbol!"}]
    with pytest.raises(ValidationError):
        instruments_upsert(rows=bad)
    # validation comes first: the valid row before the bad one is not written
    assert Instrument.objects.get(symbol=rows[1]["symbol"]).name == rows[1]["name"]
    assert Instrument.objects.count() == len(rows) + 1
