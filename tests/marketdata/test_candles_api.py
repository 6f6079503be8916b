"""GET /api/instruments/<symbol>/candles: the patterns of the bars the bars
endpoint returns, equal to TA-Lib over those bars and their warm-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
import talib

from marketdata import candles as cd
from tests.marketdata.test_candles import REAL_FILES

START = datetime(2024, 6, 3, tzinfo=UTC)
URL = "/api/instruments/AAPL/candles"


@pytest.fixture
def stored_goog(instruments):
    """GOOG's daily history stored as AAPL minutes (2,148 bars)."""
    from marketdata.services import BarRow, bars_upsert

    instrument = instruments["AAPL"]
    o, h, lo, c = REAL_FILES["goog_daily.csv"]
    rows = [
        BarRow(
            instrument_id=instrument.pk,
            timeframe="1m",
            ts=START + timedelta(minutes=i),
            open=Decimal(f"{o[i]:.2f}"),
            high=Decimal(f"{h[i]:.2f}"),
            low=Decimal(f"{lo[i]:.2f}"),
            close=Decimal(f"{c[i]:.2f}"),
            volume=Decimal(100),
        )
        for i in range(len(c))
    ]
    bars_upsert(rows=rows, provider="test")
    return o, h, lo, c


def talib_events(o, h, lo, c, first: int) -> list[tuple[int, str, int]]:
    """(t, pattern, value) where TA-Lib fires at bars `first`.. of the series."""
    out = []
    for name, function in cd.TALIB_FUNCTIONS.items():
        values = getattr(talib, function)(o, h, lo, c)
        for i in np.flatnonzero(values[first:]):
            t = int((START + timedelta(minutes=int(i) + first)).timestamp())
            out.append((t, name, int(values[first + i])))
    return sorted(out, key=lambda e: (e[0], list(cd.CANDLE_PATTERNS).index(e[1])))


@pytest.mark.django_db
def test_events_equal_talib_on_the_returned_bars_and_their_warm_up(
    client, user, stored_goog
):
    o, h, lo, c = stored_goog
    client.force_login(user)
    response = client.get(URL, {"timeframe": "1m", "limit": "500"})
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["symbol"], data["timeframe"], data["bars"]) == ("AAPL", "1m", 500)
    n = len(c)
    assert data["first"] == int((START + timedelta(minutes=n - 500)).timestamp())
    # The 500 newest bars plus the 13 before them, as TA-Lib sees them.
    window = slice(n - 500 - cd.WARMUP, n)
    expected = [
        (t + 60 * (n - 500 - cd.WARMUP), name, value)
        for t, name, value in talib_events(
            o[window], h[window], lo[window], c[window], cd.WARMUP
        )
    ]
    got = [(e["t"], e["pattern"], e["value"]) for e in data["candles"]]
    assert got == expected and len(got) > 50
    first = data["candles"][0]
    assert first["label"] == cd.CANDLE_PATTERNS[first["pattern"]]
    assert first["explanation"] == cd.EXPLANATIONS[first["pattern"]]
    assert {e["direction"] for e in data["candles"]} == {
        "bullish",
        "bearish",
        "neutral",
    }
    assert set(data["patterns"]) == set(cd.CANDLE_PATTERNS)


@pytest.mark.django_db
def test_whole_history_equals_talib_from_its_first_bar(client, user, stored_goog):
    o, h, lo, c = stored_goog
    client.force_login(user)
    data = client.get(URL, {"limit": "5000"}).json()
    assert data["bars"] == len(c)
    got = [(e["t"], e["pattern"], e["value"]) for e in data["candles"]]
    assert got == talib_events(o, h, lo, c, 0)


@pytest.mark.django_db
def test_a_range_without_bars_is_empty(client, user, stored_goog):
    client.force_login(user)
    response = client.get(URL, {"start": "2020-01-01", "end": "2020-01-02"})
    assert response.status_code == 200
    assert response.json()["candles"] == [] and response.json()["first"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeframe": "2m"}, "timeframe: expected one of"),
        ({"limit": "0"}, "limit: must be between 1 and 5000"),
        ({"limit": "ten"}, "limit: expected an integer"),
        ({"start": "yesterday"}, "start: expected an ISO 8601"),
        ({"start": "2024-06-04", "end": "2024-06-03"}, "end must be after start"),
        ({"pattern": "hammer"}, "unknown parameter: pattern"),
        ({"indicators": "sma:20"}, "unknown parameter: indicators"),
    ],
)
def test_bad_parameters_are_a_clear_400(client, user, instruments, params, message):
    client.force_login(user)
    response = client.get(URL, params)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.django_db
def test_only_logged_in_users_and_known_symbols(client, user, instruments):
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}
    client.force_login(user)
    response = client.get("/api/instruments/NOPE/candles")
    assert response.status_code == 404
    assert "NOPE" in response.json()["error"]


@pytest.mark.django_db
def test_a_token_reads_it_too(user, stored_goog):
    from django.test import Client

    from api.services import api_token_create

    token = api_token_create(user=user, name="script", scope="read")[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api.get("/api/instruments/aapl/candles", {"limit": "20"})
    assert response.status_code == 200 and response.json()["bars"] == 20
