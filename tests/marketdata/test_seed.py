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
