"""The admin's coverage by month tells the truth (issue 12, item 3): it counts
the minutes the calendar expects up to now (the extended session where the
history provider serves it, 24/7 for crypto) and, of those, the stored ones,
with `verify_data`'s function. It used to count every stored bar against the
regular session of the whole month: 170 % for a month with pre- and
post-market, 25 % for a month half over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from marketdata.calendar import expected_minute_count, expected_minutes
from marketdata.verify import verify_instrument

pytestmark = pytest.mark.django_db

JUNE, JULY = datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)


def coverage_rows(staff_client, symbol: str) -> dict[datetime, dict]:
    response = staff_client.get(
        reverse("admin:marketdata_coverage"), {"symbol": symbol}
    )
    assert response.status_code == 200
    return {row["month"]: row for row in response.context["months"]}


def test_bars_outside_the_session_do_not_lift_a_month_past_100_percent(
    staff_client, instruments, store_minutes
):
    """June 2024 of AAPL from a provider serving pre- and post-market (the
    simulator, as Alpaca), plus overnight and weekend bars from another
    source: 100 %, the same figure as `verify_data`, the stray bars shown
    apart."""
    aapl = instruments["AAPL"]
    session = list(expected_minutes("equity", JUNE, JULY, extended=True))
    overnight = [datetime(2024, 6, 5, 1, m, tzinfo=UTC) for m in range(30)]
    saturday = [datetime(2024, 6, 8, 15, m, tzinfo=UTC) for m in range(10)]
    store_minutes(aapl, session + overnight + saturday)

    row = coverage_rows(staff_client, "AAPL")[JUNE]
    assert row["stored"] == len(session) + 40
    assert row["expected"] == row["present"] == len(session) == 19 * 960
    assert row["coverage"] == 100.0 and row["outside"] == 40
    report = verify_instrument(instrument=aapl, start=JUNE, end=JULY)
    assert report.coverage == row["coverage"]
    assert report.outside_session == row["outside"]
    body = staff_client.get(
        reverse("admin:marketdata_coverage"), {"symbol": "AAPL"}
    ).content.decode()
    assert "100.00%" in body and "extended session" in body


def test_a_month_with_a_missing_week_is_below_100_percent(
    staff_client, instruments, store_minutes
):
    aapl = instruments["AAPL"]
    hole = (datetime(2024, 6, 10, tzinfo=UTC), datetime(2024, 6, 15, tzinfo=UTC))
    kept = [
        m
        for m in expected_minutes("equity", JUNE, JULY, extended=True)
        if not hole[0] <= m < hole[1]
    ]
    store_minutes(aapl, kept)
    row = coverage_rows(staff_client, "AAPL")[JUNE]
    assert row["present"] == len(kept) == row["expected"] - 5 * 960
    assert row["coverage"] == pytest.approx(100.0 * len(kept) / row["expected"])
    assert (
        row["coverage"]
        == verify_instrument(instrument=aapl, start=JUNE, end=JULY).coverage
    )


def test_the_current_month_expects_only_minutes_that_have_happened(
    staff_client, instruments, store_minutes
):
    """Crypto (24/7) stored from the start of this month to half an hour
    ago: the month is not a quarter covered for want of days still to come,
    and its figure is `verify_data`'s over the same range."""
    btc = instruments["BTC/USD"]
    now = timezone.now()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    stored_until = max(
        month, now.replace(second=0, microsecond=0) - timedelta(minutes=30)
    )
    minutes = list(expected_minutes("crypto", month - timedelta(hours=1), stored_until))
    if not minutes or minutes[-1] < month:
        minutes.append(month)  # the first minute of a month that just began
    store_minutes(btc, minutes)

    row = coverage_rows(staff_client, "BTC/USD")[month]
    after = timezone.now()
    assert row["end"] <= after
    assert row["expected"] == expected_minute_count("crypto", month, row["end"])
    assert row["expected"] <= (after - month).total_seconds() / 60 + 1
    assert row["present"] == len([m for m in minutes if m >= month])
    assert 0 < row["coverage"] <= 100.0
    report = verify_instrument(instrument=btc, start=month, end=row["end"])
    assert report.coverage == row["coverage"]
    assert report.expected_minutes == row["expected"]
