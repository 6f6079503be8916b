from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from marketdata.models import Bar, Instrument, Watchlist, WatchlistItem
from marketdata.services import BarRow, bars_upsert
from marketdata.validators import validate_symbol


@pytest.mark.parametrize(
    "symbol", ["AAPL", "BRK.B", "BTC/USD", "BF-B", "A", "X" * 15, "1INCH/USD"]
)
def test_valid_symbols(symbol):
    validate_symbol(symbol)


@pytest.mark.parametrize(
    "symbol", ["", "aapl", "AAPL ", "X" * 16, "BTC:USD", "/USD", "ÄPPL", "A_B"]
)
def test_invalid_symbols_are_rejected_with_a_clear_message(symbol):
    with pytest.raises(ValidationError) as excinfo:
        validate_symbol(symbol)
    assert "not a valid symbol" in excinfo.value.messages[0]


@pytest.mark.django_db
def test_instrument_full_clean_rejects_bad_symbol():
    with pytest.raises(ValidationError) as excinfo:
        Instrument(symbol="btc usd", name="x").full_clean()
    assert "symbol" in excinfo.value.message_dict


@pytest.mark.django_db
def test_watchlist_item_is_unique_per_watchlist(user, instruments):
    watchlist = Watchlist.objects.create(owner=user, name="Main")
    WatchlistItem.objects.create(watchlist=watchlist, instrument=instruments["AAPL"])
    with pytest.raises(IntegrityError), transaction.atomic():
        WatchlistItem.objects.create(
            watchlist=watchlist, instrument=instruments["AAPL"]
        )
    other = Watchlist.objects.create(owner=user, name="Second")
    WatchlistItem.objects.create(watchlist=other, instrument=instruments["AAPL"])


@pytest.mark.django_db
def test_watchlist_names_are_unique_per_owner(user, other_user):
    Watchlist.objects.create(owner=user, name="Main")
    Watchlist.objects.create(owner=other_user, name="Main")
    with pytest.raises(IntegrityError), transaction.atomic():
        Watchlist.objects.create(owner=user, name="Main")


def _insert_bar(instrument_id, ts, close="1.00000001"):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO marketdata_bar (instrument_id, timeframe, ts, open, high, low, close, "
            "volume, provider, origin) VALUES (%s, '1m', %s, 1, 2, 0.5, %s, 10, 'test', 'live')",
            [instrument_id, ts, close],
        )


@pytest.mark.django_db
def test_duplicate_bar_is_rejected_by_the_primary_key(instruments):
    ts = datetime(2024, 3, 1, 15, 30, tzinfo=UTC)
    _insert_bar(instruments["AAPL"].pk, ts)
    with pytest.raises(IntegrityError), transaction.atomic():
        _insert_bar(instruments["AAPL"].pk, ts)
    _insert_bar(instruments["MSFT"].pk, ts)  # same minute, other instrument: fine


@pytest.mark.django_db
def test_bar_prices_keep_eight_decimals_exactly(instruments):
    ts = datetime(2024, 3, 1, 15, 31, tzinfo=UTC)
    btc = instruments["BTC/USD"]
    bars_upsert(
        rows=[
            BarRow(
                instrument_id=btc.pk,
                timeframe="1m",
                ts=ts,
                open=Decimal("61234.12345678"),
                high=Decimal("61300.00000001"),
                low=Decimal("61200.5"),
                close=Decimal("0.00000001"),
                volume=Decimal("0.12345678"),
                vwap=Decimal("61250.87654321"),
                trade_count=7,
            )
        ],
        provider="binance",
    )
    bar = Bar.objects.get(instrument=btc, timeframe="1m", ts=ts)
    assert bar.open == Decimal("61234.12345678")
    assert bar.high == Decimal("61300.00000001")
    assert bar.close == Decimal("0.00000001")
    assert bar.volume == Decimal("0.12345678")
    assert bar.vwap == Decimal("61250.87654321")
    assert (bar.provider, bar.origin, bar.revision) == ("binance", "history", 0)


@pytest.mark.django_db
def test_bars_upsert_is_idempotent_and_counts_corrections(instruments):
    aapl = instruments["AAPL"]
    ts = datetime(2024, 3, 1, 15, 32, tzinfo=UTC)

    def row(close):
        return BarRow(
            aapl.pk,
            "1m",
            ts,
            Decimal("10"),
            Decimal("11"),
            Decimal("9"),
            Decimal(close),
            Decimal("100"),
        )

    assert bars_upsert(rows=[row("10.5")], provider="alpaca").written == 1
    assert bars_upsert(rows=[row("10.5")], provider="alpaca").written == 0
    # Replace mode: an unchanged bar is not rewritten, a corrected one is.
    assert (
        bars_upsert(
            rows=[row("10.5")], provider="alpaca", origin="live", replace=True
        ).written
        == 0
    )
    assert (
        bars_upsert(
            rows=[row("10.7")], provider="alpaca", origin="live", replace=True
        ).written
        == 1
    )
    bar = Bar.objects.get(instrument=aapl, ts=ts)
    assert bar.close == Decimal("10.7")
    assert bar.revision == 1
    assert bar.origin == "live"


@pytest.mark.django_db
def test_bar_table_is_partitioned_or_hypertable():
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'marketdata_bar'")
        (relkind,) = cursor.fetchone()
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        timescale = cursor.fetchone() is not None
    assert relkind == ("r" if timescale else "p")
