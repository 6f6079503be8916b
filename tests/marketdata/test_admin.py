from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketdata.models import Instrument, Watchlist
from marketdata.services import BarRow, bars_upsert


@pytest.mark.django_db
def test_admin_refuses_non_staff(client, user):
    client.force_login(user)
    response = client.get("/admin/marketdata/instrument/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_admin_refuses_anonymous(client):
    response = client.get("/admin/marketdata/instrument/bars/?symbol=AAPL")
    assert response.status_code == 302


@pytest.mark.django_db
def test_staff_can_search_and_filter_instruments(client, staff_user, instruments):
    client.force_login(staff_user)
    response = client.get("/admin/marketdata/instrument/", {"q": "apple"})
    assert response.status_code == 200
    assert b"AAPL" in response.content
    response = client.get(
        "/admin/marketdata/instrument/", {"asset_class__exact": "crypto"}
    )
    assert b"BTC/USD" in response.content and b"AAPL<" not in response.content


@pytest.mark.django_db
def test_admin_rejects_invalid_symbol_with_message(client, staff_user):
    client.force_login(staff_user)
    response = client.post(
        "/admin/marketdata/instrument/add/",
        {
            "symbol": "btc usd",
            "name": "Bad",
            "asset_class": "crypto",
            "currency": "USD",
            "price_increment": "0.01",
            "provider_symbols": "{}",
            "active": "on",
        },
    )
    assert response.status_code == 200
    assert "is not a valid symbol" in response.content.decode()
    assert not Instrument.objects.filter(name="Bad").exists()


@pytest.mark.django_db
def test_bulk_deactivate_and_activate(client, staff_user, instruments):
    client.force_login(staff_user)
    ids = [instruments["AAPL"].pk, instruments["MSFT"].pk]
    client.post(
        "/admin/marketdata/instrument/",
        {"action": "deactivate", "_selected_action": ids},
    )
    assert not Instrument.objects.filter(pk__in=ids, active=True).exists()
    client.post(
        "/admin/marketdata/instrument/", {"action": "activate", "_selected_action": ids}
    )
    assert Instrument.objects.filter(pk__in=ids, active=True).count() == 2


@pytest.mark.django_db
def test_watchlist_admin_with_inline_items(client, staff_user, user, instruments):
    client.force_login(staff_user)
    response = client.post(
        "/admin/marketdata/watchlist/add/",
        {
            "owner": user.pk,
            "name": "Semis",
            "position": 0,
            "items-TOTAL_FORMS": 2,
            "items-INITIAL_FORMS": 0,
            "items-0-instrument": instruments["NVDA"].pk,
            "items-0-position": 0,
            "items-1-instrument": instruments["AMD"].pk,
            "items-1-position": 1,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    watchlist = Watchlist.objects.get(owner=user, name="Semis")
    assert [i.instrument.symbol for i in watchlist.items.all()] == ["NVDA", "AMD"]
    autocomplete = client.get(
        "/admin/autocomplete/",
        {
            "term": "nvd",
            "app_label": "marketdata",
            "model_name": "watchlistitem",
            "field_name": "instrument",
        },
    )
    assert autocomplete.status_code == 200
    assert "NVDA" in autocomplete.content.decode()


@pytest.mark.django_db
def test_bar_browser_pages_by_time_without_counting(
    client, staff_user, instruments, django_assert_max_num_queries
):
    aapl = instruments["AAPL"]
    start = datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    bars_upsert(
        rows=[
            BarRow(
                aapl.pk,
                "1m",
                start + timedelta(minutes=i),
                Decimal(1),
                Decimal(2),
                Decimal("0.5"),
                Decimal("1.5"),
                Decimal(100),
            )
            for i in range(150)
        ],
        provider="simulator",
    )
    client.force_login(staff_user)
    response = client.get("/admin/marketdata/instrument/bars/", {"symbol": "AAPL"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "2024-05-01 15:59" in body  # newest first
    assert "Older bars" in body
    assert "count(" not in str(response.context)
    response = client.get("/admin/marketdata/instrument/bars/", {"symbol": "NOPE"})
    assert "No instrument" in response.content.decode()


@pytest.mark.django_db
def test_clearing_a_stream_error_in_admin_retries_the_symbol_now(
    client, staff_user, instruments
):
    from marketdata.services import instrument_stream_error_set
    from streaming.selectors import instruments_to_stream

    client.force_login(staff_user)
    instrument_stream_error_set(symbols=["AAPL"], message="invalid symbol AAPL")
    instrument_stream_error_set(symbols=["AAPL"], message="invalid symbol AAPL")
    aapl = Instrument.objects.get(symbol="AAPL")
    assert aapl.stream_error_retries == 2
    assert aapl.stream_error_retry_at - aapl.stream_error_at == timedelta(minutes=30)

    response = client.post(
        "/admin/marketdata/instrument/",
        {"action": "clear_stream_error", "_selected_action": [aapl.id]},
        follow=True,
    )
    assert b"1 instruments cleared" in response.content
    aapl.refresh_from_db()
    assert (aapl.stream_error, aapl.stream_error_retries) == ("", 0)
    [row] = instruments_to_stream(extra_symbols={"AAPL"})
    assert not row["stream_error"] and not row["retry_due"]
