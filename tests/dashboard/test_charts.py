"""The instrument chart's eight indicators, remembered per user, and the CSV
exports of bars (with indicator columns, checked against TA-Lib) and
watchlists, over real HTTP requests, PostgreSQL and Redis."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
import talib
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from dashboard import chart_views
from marketdata.models import Bar, Instrument
from marketdata.services import BarRow, bars_upsert, watchlist_create
from preferences.selectors import preferences_get
from preferences.services import preferences_update
from streaming.snapshots import snapshots_put

pytestmark = pytest.mark.django_db
EIGHT = ("sma", "ema", "bb", "rsi", "macd", "stoch", "willr", "atr")
T0 = datetime(2024, 3, 5, 14, 0, tzinfo=UTC)
COUNT = 240


@pytest.fixture
def minutes(instruments):
    """Four hours of BTC/USD minutes: a random walk on a cent grid."""
    rng = np.random.default_rng(3)
    closes = np.round(64000 + np.cumsum(rng.normal(0, 15, COUNT)), 2)
    rows = []
    previous = 64000.0
    for i, close in enumerate(closes):
        high = max(previous, close) + round(abs(rng.normal(0, 5)), 2)
        low = min(previous, close) - round(abs(rng.normal(0, 5)), 2)
        rows.append(
            BarRow(
                instrument_id=instruments["BTC/USD"].id,
                timeframe="1m",
                ts=T0 + timedelta(minutes=i),
                open=Decimal(f"{previous:.2f}"),
                high=Decimal(f"{high:.2f}"),
                low=Decimal(f"{low:.2f}"),
                close=Decimal(f"{close:.2f}"),
                volume=Decimal(f"{rng.uniform(0.1, 3):.8f}"),
                trade_count=int(rng.integers(1, 90)),
            )
        )
        previous = float(close)
    bars_upsert(rows=rows, provider="simulator", origin="live")
    return rows


def read_csv(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(
        response.streaming_content if response.streaming else [response.content]
    )
    return list(csv.DictReader(io.StringIO(text.decode())))


# --- remembered indicators ----------------------------------------------------------
def save(client, document) -> tuple[int, dict]:
    response = client.post(
        reverse("dashboard:chart_settings"),
        data=document if isinstance(document, str) else json.dumps(document),
        content_type="application/json",
        HTTP_ACCEPT="application/json",
    )
    return response.status_code, response.json()


def test_page_offers_all_eight_with_their_parameters(user_client, instruments):
    html = user_client.get(reverse("dashboard:instrument", args=["AAPL"])).content
    html = html.decode()
    for name in EIGHT:
        assert f'data-indicator="{name}"' in html
    for param in ('data-param="smooth"', 'data-param="signal"', 'data-param="k"'):
        assert param in html


def test_chosen_indicators_are_remembered_per_user(
    user_client, other_user, instruments
):
    status, payload = save(
        user_client,
        {
            "indicators": {
                "willr": {"on": True, "period": 21},
                "stoch": {"on": True, "k": 9, "d": 3, "smooth": 1},
                "atr": {"on": True, "period": 10},
                "bb": {"on": False, "period": 30, "k": 2.5},
            }
        },
    )
    assert status == 200
    assert payload["spec"] == "stoch:9:3:1,willr:21,atr:10"
    html = user_client.get(reverse("dashboard:instrument", args=["MSFT"])).content
    html = html.decode()
    assert 'data-spec="stoch:9:3:1,willr:21,atr:10"' in html
    assert '<input type="checkbox" name="willr" checked>' in html
    assert '<input type="checkbox" name="bb">' in html
    assert 'data-param="period" value="30"' in html  # kept while off
    # Someone else still has the defaults.
    other = Client()
    other.force_login(other_user)
    html = other.get(reverse("dashboard:instrument", args=["MSFT"])).content.decode()
    indicators = html[: html.index('data-layer="anomalies"')]
    assert 'data-spec=""' in html and "checked" not in indicators


def test_marker_layers_are_toggled_and_remembered(user_client, instruments):
    def anomalies_box():
        html = user_client.get(reverse("dashboard:instrument", args=["AAPL"]))
        html = html.content.decode()
        start = html.index('data-layer="anomalies"')
        return html[start : html.index("</span>", start)]

    assert 'name="layer-anomalies" checked' in anomalies_box()  # on by default
    status, payload = save(user_client, {"layers": {"anomalies": {"on": False}}})
    assert status == 200 and payload["chart"]["layers"] == {"anomalies": {"on": False}}
    assert "checked" not in anomalies_box()
    # Saving the indicators (the page always sends both) keeps the choice.
    status, payload = save(
        user_client,
        {"indicators": {"rsi": {"on": True}}, "layers": {"anomalies": {"on": False}}},
    )
    assert payload["chart"]["layers"]["anomalies"] == {"on": False}


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({"indicators": {"ichimoku": {"on": True}}}, "unknown indicator(s) ichimoku"),
        (
            {"indicators": {"rsi": {"on": True, "period": 14.5}}},
            "indicators.rsi.period",
        ),
        ({"indicators": {"rsi": {"period": 1}}}, "between 2 and 500"),
        ({"indicators": {"sma": {"period": 100000}}}, "indicators.sma.period"),
        ({"indicators": {"sma": {"period": "20"}}}, "expected a number"),
        ({"indicators": {"sma": {"on": "yes"}}}, "indicators.sma.on"),
        ({"indicators": {"ema": {"span": 3}}}, "unknown parameter(s) span"),
        ({"indicators": {"macd": {"fast": 30, "slow": 26}}}, "indicators.macd.fast"),
        ({"indicators": {"bb": {"k": 50}}}, "indicators.bb.k"),
        ({"indicators": []}, "indicators: expected an object"),
        ({"colors": {}}, "unknown key(s) colors"),
        ({"layers": {"ghosts": {"on": True}}}, "unknown layer(s) ghosts"),
        ({"layers": {"anomalies": {"on": 1}}}, "layers.anomalies.on"),
        ({"layers": {"anomalies": True}}, "layers.anomalies: expected"),
        ("{not json", "body: malformed JSON"),
    ],
)
def test_bad_indicator_settings_are_refused_naming_the_field(
    user_client, user, document, error
):
    save(user_client, {"indicators": {"sma": {"on": True, "period": 7}}})
    status, payload = save(user_client, document)
    assert status == 400 and error in payload["error"]
    saved = preferences_get(user=user).chart["indicators"]["sma"]
    assert saved == {"on": True, "period": 7}


def test_the_service_validates_every_caller(user):
    with pytest.raises(ValidationError, match="indicators.atr.period"):
        preferences_update(user=user, chart={"indicators": {"atr": {"period": 0}}})
    saved = preferences_update(user=user, chart={"indicators": {"rsi": {"on": True}}})
    assert saved.chart["indicators"]["rsi"] == {"on": True, "period": 14}
    assert set(saved.chart["indicators"]) == set(EIGHT)


def test_settings_need_login(client):
    response = client.post(
        reverse("dashboard:chart_settings"), data="{}", content_type="application/json"
    )
    assert response.status_code == 302


# --- bars export -------------------------------------------------------------------------
SPEC = "sma:20,ema:10,bb:20:2,rsi:14,macd:12:26:9,stoch:14:3:3,willr:14,atr:14"


def export(client, **params):
    return client.get(reverse("dashboard:bars_export"), params)


def test_bars_export_with_all_eight_indicators_against_talib(user_client, minutes):
    start = T0 + timedelta(minutes=100)
    end = T0 + timedelta(minutes=160)
    response = export(
        user_client,
        symbol="btc/usd",
        timeframe="1m",
        start=int(start.timestamp()),
        end=end.isoformat(),
        indicators=SPEC,
    )
    assert response.status_code == 200
    assert (
        "BTC-USD_1m_20240305T1540Z_20240305T1639Z.csv"
        in response["Content-Disposition"]
    )
    rows = read_csv(response)
    assert len(rows) == 60
    first = rows[0]
    assert list(first)[:7] == [
        "time_utc", "open", "high", "low", "close", "volume", "trades",
    ]  # fmt: skip
    stored = minutes[100]
    assert first["time_utc"] == "2024-03-05T15:40:00Z"
    assert Decimal(first["close"]) == stored.close
    assert Decimal(first["volume"]) == stored.volume
    assert int(first["trades"]) == stored.trade_count
    # Indicators are warmed up on older bars: each value equals TA-Lib's over
    # the whole series at the same bar.
    h = np.array([float(r.high) for r in minutes])
    lo = np.array([float(r.low) for r in minutes])
    c = np.array([float(r.close) for r in minutes])
    k, d = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    upper, middle, lower = talib.BBANDS(c, 20, 2, 2)
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    oracle = {
        "sma_20": talib.SMA(c, 20),
        "ema_10": talib.EMA(c, 10),
        "bb_20_2_upper": upper,
        "bb_20_2_lower": lower,
        "rsi_14": talib.RSI(c, 14),
        "macd_12_26_9": macd,
        "macd_12_26_9_signal": signal,
        "macd_12_26_9_hist": hist,
        "stoch_14_3_3_k": k,
        "stoch_14_3_3_d": d,
        "willr_14": talib.WILLR(h, lo, c, 14),
        "atr_14": talib.ATR(h, lo, c, 14),
    }
    for i, row in enumerate(rows):
        for column, expected in oracle.items():
            assert float(row[column]) == pytest.approx(
                expected[100 + i], rel=1e-7, abs=1e-7
            ), (column, i)


def test_bars_export_leaves_warm_up_empty_and_quotes_nothing_odd(user_client, minutes):
    response = export(
        user_client, symbol="BTC/USD", end=(T0 + timedelta(minutes=25)).isoformat(),
        indicators="sma:20",
    )  # fmt: skip
    rows = read_csv(response)
    assert len(rows) == 25
    assert [r["sma_20"] for r in rows[:19]] == [""] * 19
    assert rows[19]["sma_20"] != ""


def test_exported_bars_load_back(user_client, minutes, instruments, tmp_path):
    response = export(user_client, symbol="BTC/USD", indicators="rsi:14,macd")
    path = tmp_path / "btc.csv"
    path.write_bytes(response.content)
    call_command(
        "load_history", "--provider", "csv", "--file", str(path), "--symbol", "ETH/USD"
    )
    loaded = Bar.objects.filter(instrument=instruments["ETH/USD"]).order_by("ts")
    assert [(b.ts, b.open, b.close, b.volume) for b in loaded] == [
        (r.ts, r.open, r.close, r.volume) for r in minutes
    ]


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"symbol": "NOPE"}, 404, "unknown instrument"),
        ({}, 400, "symbol: required"),
        ({"symbol": "BTC/USD", "timeframe": "2m"}, 400, "timeframe"),
        ({"symbol": "BTC/USD", "indicators": "sma:0"}, 400, "indicators: sma"),
        ({"symbol": "BTC/USD", "start": "yesterday"}, 400, "start: expected"),
        ({"symbol": "BTC/USD", "limit": "5"}, 400, "unknown parameter: limit"),
    ],
)
def test_bars_export_refusals(user_client, minutes, params, status, error):
    response = export(user_client, **params)
    assert response.status_code == status
    assert error in response.json()["error"]


def test_bars_export_refuses_more_than_it_can_send(user_client, minutes, monkeypatch):
    monkeypatch.setattr(chart_views, "EXPORT_MAX", 100)
    response = export(user_client, symbol="BTC/USD")
    assert response.status_code == 400 and "more than 100" in response.json()["error"]


def test_exports_need_login(client, user, instruments):
    mine = watchlist_create(owner=user, name="Mine", symbols=["AAPL"])
    for url in (
        reverse("dashboard:bars_export") + "?symbol=AAPL",
        reverse("dashboard:watchlist_export", args=[mine.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response.url


# --- watchlist export ---------------------------------------------------------------------
def test_watchlist_export(user_client, user, other_user, instruments):
    Instrument.objects.filter(symbol="MSFT").update(name='Microsoft, "MSFT" Corp')
    Instrument.objects.filter(symbol="NVDA").update(name="=HYPERLINK(1)")
    mine = watchlist_create(
        owner=user, name="Tech, mine", symbols=["MSFT", "AAPL", "NVDA"]
    )
    theirs = watchlist_create(owner=other_user, name="Theirs", symbols=["TSLA"])
    snapshots_put(
        snapshots=[
            {
                "symbol": "AAPL",
                "seq": 3,
                "ts": "2024-05-01T14:30:01.123456+00:00",
                "received_at": time.time(),
                "last": "189.23",
                "prev_close": "186.50",
                "change": "2.73",
                "change_pct": "1.4638",
                "volume": "1234567",
                "bid": "189.22",
                "ask": "189.24",
                "freshness": "live",
            }
        ]
    )
    response = user_client.get(reverse("dashboard:watchlist_export", args=[mine.pk]))
    assert response.status_code == 200
    assert "tech-mine_" in response["Content-Disposition"]
    text = response.content.decode()
    assert 'Microsoft, ""MSFT"" Corp' in text  # quoted, quotes doubled
    rows = read_csv(response)
    assert [r["symbol"] for r in rows] == ["MSFT", "AAPL", "NVDA"]
    assert rows[0]["name"] == 'Microsoft, "MSFT" Corp' and rows[0]["last"] == ""
    aapl = rows[1]
    assert (aapl["last"], aapl["change"], aapl["change_pct"]) == (
        "189.23",
        "2.73",
        "1.4638",
    )
    assert aapl["updated_utc"] == "2024-05-01T14:30:01Z"
    assert aapl["freshness"] == "live" and aapl["bid"] == "189.22"
    assert rows[2]["name"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    # Another user's watchlist is not there at all.
    response = user_client.get(reverse("dashboard:watchlist_export", args=[theirs.pk]))
    assert response.status_code == 404
