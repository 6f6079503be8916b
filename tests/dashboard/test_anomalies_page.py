"""The anomalies page: login required, filters, pagination, nav link."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from marketdata.anomalies import Anomaly as Found
from marketdata.services import anomalies_record

T = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr data-kind="([a-z_]+)" data-symbol="([^"]+)">', html)


@pytest.fixture
def page(instruments, user):
    aapl, msft = instruments["AAPL"], instruments["MSFT"]
    anomalies = [
        (aapl.id, Found("AAPL", "return_spike", T, 8.0, 0.02, 0.0, "up",
                        "+2.00% in one minute is 8.0 robust deviations.")),
        (msft.id, Found("MSFT", "volume_surge", T + timedelta(days=1), 5.5, 9e4,
                        1e4, "", "90000 volume in one minute is 5.5x.")),
    ]  # fmt: skip
    anomalies += [
        (aapl.id, Found("AAPL", "trade_rate_surge", T - timedelta(minutes=i), 6.0,
                        400, 40, "", "400 trades in one minute."))
        for i in range(1, 61)
    ]  # fmt: skip
    anomalies_record(anomalies=anomalies)
    client = Client()
    client.force_login(user)
    return client


def test_login_required(db):
    response = Client().get(reverse("dashboard:anomalies"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_lists_newest_first_paginated_with_a_nav_link(page):
    html = page.get(reverse("dashboard:anomalies")).content.decode()
    assert 'href="/anomalies/" aria-current="page">Anomalies</a>' in html
    listed = rows(html)
    assert len(listed) == 50 and listed[:2] == [
        ("volume_surge", "MSFT"), ("return_spike", "AAPL"),
    ]  # fmt: skip
    assert "Page 1 of 2" in html and "robust deviations" in html
    second = page.get(reverse("dashboard:anomalies"), {"page": 2}).content.decode()
    assert len(rows(second)) == 12


def test_filters_by_instrument_kind_dates_and_score(page):
    url = reverse("dashboard:anomalies")
    assert rows(page.get(url, {"symbol": "msft"}).content.decode()) == [
        ("volume_surge", "MSFT")
    ]
    assert rows(page.get(url, {"kind": "return_spike"}).content.decode()) == [
        ("return_spike", "AAPL")
    ]
    assert rows(page.get(url, {"min_score": "7"}).content.decode()) == [
        ("return_spike", "AAPL")
    ]
    day = page.get(url, {"start": "2026-03-03", "end": "2026-03-03"}).content.decode()
    assert rows(day) == [("volume_surge", "MSFT")]
    html = page.get(url, {"kind": "return_spike", "page": 1}).content.decode()
    assert 'value="return_spike" selected' in html


def test_bad_filters_are_shown_back(page):
    url = reverse("dashboard:anomalies")
    html = page.get(url, {"start": "2026-03-05", "end": "2026-03-01"}).content.decode()
    assert "end: must not be before the start date" in html
    html = page.get(url, {"min_score": "lots"}).content.decode()
    assert "min_score: Enter a number." in html
