"""GET /api/anomalies: the chart's markers and the anomalies page's data,
behind the same auth as the bars endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from marketdata.anomalies import Anomaly as Found
from marketdata.models import Anomaly
from marketdata.services import anomalies_record

T = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def found(symbol, kind, minutes, score, direction=""):
    return Found(
        symbol=symbol, kind=kind, ts=T + timedelta(minutes=minutes), score=score,
        value=0.01, baseline=0.0, direction=direction, explain=f"{kind} {score}.",
    )  # fmt: skip


@pytest.fixture
def stored(instruments):
    aapl, btc = instruments["AAPL"], instruments["BTC/USD"]
    anomalies_record(
        anomalies=[
            (aapl.id, found("AAPL", "return_spike", 0, 7.5, "up")),
            (aapl.id, found("AAPL", "volume_surge", 5, 12.0)),
            (btc.id, found("BTC/USD", "trade_rate_surge", 10, 6.0)),
            (aapl.id, found("AAPL", "return_spike", 0, 7.5, "up")),  # again
        ]
    )
    return instruments


def test_anomalies_are_listed_newest_first_with_filters(stored, token, bearer):
    client = bearer(token)
    url = reverse("api:anomalies")
    everything = client.get(url).json()
    assert [(a["symbol"], a["kind"]) for a in everything] == [
        ("BTC/USD", "trade_rate_surge"),
        ("AAPL", "volume_surge"),
        ("AAPL", "return_spike"),
    ]
    assert Anomaly.objects.count() == 3  # recorded once per (instrument, kind, ts)
    spike = everything[-1]
    assert spike["time"] == int(T.timestamp()) and spike["direction"] == "up"
    assert spike["explain"] == "return_spike 7.5."
    aapl = client.get(url, {"symbol": "aapl"}).json()
    assert {a["kind"] for a in aapl} == {"return_spike", "volume_surge"}
    window = client.get(
        url, {"symbol": "AAPL", "start": int(T.timestamp()) + 60, "end": "2026-03-03"}
    ).json()
    assert [a["kind"] for a in window] == ["volume_surge"]
    assert [a["symbol"] for a in client.get(url, {"min_score": 10}).json()] == ["AAPL"]
    kind = client.get(url, {"kind": "trade_rate_surge"}).json()
    assert [a["symbol"] for a in kind] == ["BTC/USD"]


def test_bad_filters_are_clear_errors(stored, token, bearer):
    client = bearer(token)
    url = reverse("api:anomalies")
    bad_kind = client.get(url, {"kind": "moon"})
    assert (
        bad_kind.status_code == 400
        and "kind: expected one of" in bad_kind.json()["error"]
    )
    bad_time = client.get(url, {"start": "yesterday"})
    assert bad_time.status_code == 400 and bad_time.json()["error"].startswith("start:")
    unknown = client.get(url, {"symbol": "NOPE"})
    assert unknown.status_code == 404 and "NOPE" in unknown.json()["error"]
    assert client.get(url, {"min_score": -1}).status_code == 400


def test_the_session_works_and_anonymous_callers_are_refused(stored, user):
    url = reverse("api:anomalies")
    anonymous = Client().get(url)
    assert anonymous.status_code == 401
    browser = Client()
    browser.force_login(user)
    assert len(browser.get(url, {"symbol": "AAPL"}).json()) == 2
