"""`load_history`'s options as a `LoadRequest`: the range, the instruments
and the provider of each, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from marketdata.history import LoadHistoryError, LoadRequest
from marketdata.history.request import (
    DEFAULT_YEARS,
    load_instruments,
    load_range,
    provider_groups,
)


def test_range_of_a_year_and_of_explicit_days():
    assert load_range(LoadRequest(year=2023)) == (
        datetime(2023, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert load_range(LoadRequest(start="2024-03-01", end="2024-03-05")) == (
        datetime(2024, 3, 1, tzinfo=UTC),
        datetime(2024, 3, 5, tzinfo=UTC),
    )


def test_range_never_reaches_past_the_current_minute():
    this_year = timezone.now().year
    _, end = load_range(LoadRequest(year=this_year))
    now = timezone.now()
    assert end <= now and (end.second, end.microsecond) == (0, 0)
    start, end = load_range(LoadRequest(end=f"{this_year + 2}-01-01"))
    assert end <= timezone.now()
    # Default start: the first of the month DEFAULT_YEARS before that minute.
    assert start == datetime(end.year - DEFAULT_YEARS, end.month, 1, tzinfo=UTC)


def test_empty_range_and_mixed_options_are_refused():
    with pytest.raises(LoadHistoryError, match="range is empty"):
        load_range(LoadRequest(start="2024-03-05", end="2024-03-05"))
    with pytest.raises(LoadHistoryError, match="--year or --start/--end"):
        load_range(LoadRequest(year=2024, end="2024-06-01"))


@pytest.mark.django_db
def test_instruments_keep_the_order_given_and_unknown_ones_are_named(instruments):
    found = load_instruments(LoadRequest(symbols=" msft, AAPL ,,btc/usd"))
    assert [i.symbol for i in found] == ["MSFT", "AAPL", "BTC/USD"]
    with pytest.raises(LoadHistoryError, match=r"Unknown instrument\(s\): NOPE, ZZZ"):
        load_instruments(LoadRequest(symbols="AAPL,NOPE,ZZZ"))


@pytest.mark.django_db
def test_an_explicit_provider_loads_every_instrument(instruments):
    members = [instruments["AAPL"], instruments["BTC/USD"]]
    assert provider_groups(LoadRequest(provider="alpaca"), members) == {
        "alpaca": members
    }
    routed = provider_groups(LoadRequest(), members)
    assert sorted(i.symbol for group in routed.values() for i in group) == [
        "AAPL",
        "BTC/USD",
    ]


@pytest.mark.django_db
def test_a_csv_load_needs_a_file_and_a_symbol(instruments):
    with pytest.raises(CommandError, match="needs --file PATH and --symbol"):
        call_command("load_history", "--provider", "csv", "--symbol", "AAPL")
