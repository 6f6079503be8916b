"""GET /api/instruments/<symbol>/bars: auth, parameters, symbols with "/" and "."."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketdata.calendar import expected_minutes
from marketdata.models import Instrument
from marketdata.services import bars_upsert

pytestmark = pytest.mark.django_db

START = datetime(2024, 6, 3, tzinfo=UTC)


@pytest.fixture
def btc_minutes(instruments, store_minutes):
    btc = instruments["BTC/USD"]
    minutes = [START + timedelta(minutes=i) for i in range(600)]
    return btc, store_minutes(btc, minutes, decimals=8)


def test_login_required(client, btc_minutes):
    response = client.get("/api/instruments/BTC/USD/bars")
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}


def test_symbol_with_slash_plain_and_encoded(user_client, btc_minutes):
    btc, rows = btc_minutes
    for url in ("/api/instruments/BTC/USD/bars", "/api/instruments/BTC%2FUSD/bars"):
        response = user_client.get(url, {"timeframe": "1m", "limit": "5"})
        assert response.status_code == 200, response.content
        data = response.json()
        assert data["symbol"] == "BTC/USD" and data["timeframe"] == "1m"
        assert [b["t"] for b in data["bars"]] == [
            int(r[2].timestamp()) for r in rows[-5:]
        ]
        last = data["bars"][-1]
        assert last["o"] == float(rows[-1][3]) and last["c"] == float(rows[-1][6])
        assert last["v"] == float(rows[-1][7])
        assert data["next_before"] == data["bars"][0]["t"]


def test_symbol_with_dot(user_client, instruments, store_minutes):
    brk = Instrument.objects.get(symbol="BRK.B")
    store_minutes(
        brk, list(expected_minutes("equity", START, START + timedelta(days=1)))
    )
    response = user_client.get("/api/instruments/brk.b/bars", {"timeframe": "1h"})
    assert response.status_code == 200
    bars = response.json()["bars"]
    assert len(bars) == 7  # 13:30-14:00 partial hour through 19:00-20:00
    assert response.json()["next_before"] is None


def test_scroll_back_with_next_before(user_client, btc_minutes):
    btc, rows = btc_minutes
    seen = []
    end = None
    while True:
        params = {"timeframe": "15m", "limit": "7"}
        if end is not None:
            params["end"] = str(end)
        data = user_client.get("/api/instruments/BTC/USD/bars", params).json()
        seen = data["bars"] + seen
        end = data["next_before"]
        if end is None:
            break
    assert len(seen) == 40  # 600 minutes / 15
    assert [b["t"] for b in seen] == sorted({b["t"] for b in seen})
    assert seen[0]["o"] == float(rows[0][3]) and seen[-1]["c"] == float(rows[-1][6])


def test_daily_from_stored_daily_bars(user_client, instruments):
    spy = instruments["SPY"]
    day = datetime(2020, 3, 2, 5, 0, tzinfo=UTC)
    bars_upsert(
        rows=[(spy.id, "1d", day, Decimal("300.5"), Decimal("310"), Decimal("299"), Decimal("305.25"), Decimal("1000000"), None, None)],
        provider="test",
    )  # fmt: skip
    data = user_client.get("/api/instruments/SPY/bars", {"timeframe": "1d"}).json()
    assert data["bars"] == [
        {
            "t": int(day.timestamp()),
            "o": 300.5,
            "h": 310.0,
            "l": 299.0,
            "c": 305.25,
            "v": 1000000.0,
        }
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeframe": "2m"}, "timeframe"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2024-13-45"}, "end"),
        ({"limit": "0"}, "limit"),
        ({"limit": "50000"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"start": "2024-06-05", "end": "2024-06-04"}, "end must be after start"),
        ({"frame": "1m"}, "unknown parameter"),
    ],
)
def test_bad_parameters_get_400(user_client, btc_minutes, params, message):
    response = user_client.get("/api/instruments/BTC/USD/bars", params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_unknown_symbol_404(user_client, instruments):
    response = user_client.get("/api/instruments/NOPE/bars")
    assert response.status_code == 404


def test_range_filters(user_client, btc_minutes):
    btc, rows = btc_minutes
    start = rows[10][2]
    end = rows[20][2]
    data = user_client.get(
        "/api/instruments/BTC/USD/bars",
        {"start": start.isoformat(), "end": end.isoformat().replace("+00:00", "Z")},
    ).json()
    assert [b["t"] for b in data["bars"]] == [
        int(r[2].timestamp()) for r in rows[10:20]
    ]
    assert data["next_before"] is None
