"""Alpaca REST fidelity: pagination, errors, fault injection."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import requests

from simulator import prices


def _get(sim, path, params=None, auth=True, **kwargs):
    headers = (
        {"APCA-API-KEY-ID": sim.key_id, "APCA-API-SECRET-KEY": sim.secret}
        if auth
        else {}
    )
    return requests.get(
        sim.http_url + path, params=params, headers=headers, timeout=30, **kwargs
    )


def _follow(sim, params) -> tuple[dict[str, list], list[dict]]:
    merged: dict[str, list] = {}
    pages = []
    token = None
    while True:
        page = _get(
            sim, "/v2/stocks/bars", {**params, "page_token": token} if token else params
        )
        assert page.status_code == 200, page.text
        body = page.json()
        pages.append(body)
        for symbol, bars in body["bars"].items():
            merged.setdefault(symbol, []).extend(bars)
        token = body["next_page_token"]
        if token is None:
            return merged, pages


def test_limit_counts_across_symbols_and_pages_are_symbol_major(simulator):
    params = {
        "symbols": "MSFT,AAPL,NOPE",
        "timeframe": "1Min",
        "start": "2024-03-04T00:00:00Z",
        "end": "2024-03-04T09:59:00Z",  # inclusive: 600 minutes per symbol
        "limit": 250,
    }
    merged, pages = _follow(simulator, params)
    assert [sum(len(v) for v in p["bars"].values()) for p in pages] == [
        250,
        250,
        250,
        250,
        200,
    ]
    assert list(pages[2]["bars"]) == ["AAPL", "MSFT"]  # AAPL's tail, then MSFT
    assert set(merged) == {"AAPL", "MSFT"}  # unknown symbols simply have no bars
    for symbol in ("AAPL", "MSFT"):
        truth = prices.minute_bars(
            symbol,
            datetime(2024, 3, 4, tzinfo=UTC),
            datetime(2024, 3, 4, 10, tzinfo=UTC),
            seed=simulator.seed,
        )
        got = merged[symbol]
        assert [b["t"] for b in got][:2] == [
            "2024-03-04T00:00:00Z",
            "2024-03-04T00:01:00Z",
        ]
        assert [b["c"] for b in got] == truth.c.tolist()
        assert [b["v"] for b in got] == [int(v) for v in truth.volume]
        assert all(isinstance(b["v"], int) for b in got)
    token = pages[0]["next_page_token"]
    assert base64.b64decode(token).decode().startswith("AAPL|")


def test_single_symbol_endpoint_and_descending_sort(simulator):
    body = _get(
        simulator,
        "/v2/stocks/SPY/bars",
        {
            "timeframe": "1Hour",
            "start": "2024-03-04",
            "end": "2024-03-05",
            "sort": "desc",
            "limit": 5,
        },
    ).json()
    assert body["symbol"] == "SPY"
    stamps = [b["t"] for b in body["bars"]]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 5
    assert body["next_page_token"] is not None
    rest = _get(
        simulator,
        "/v2/stocks/SPY/bars",
        {
            "timeframe": "1Hour",
            "start": "2024-03-04",
            "end": "2024-03-05",
            "sort": "desc",
            "limit": 5,
            "page_token": body["next_page_token"],
        },
    ).json()
    assert rest["bars"][0]["t"] < stamps[-1]


def test_daily_bars_follow_the_hours_option(simulator):
    body = _get(
        simulator,
        "/v2/stocks/bars",
        {
            "symbols": "AAPL",
            "timeframe": "1Day",
            "start": "2024-07-01",
            "end": "2024-07-08",
        },
    ).json()
    days = [b["t"] for b in body["bars"]["AAPL"]]
    assert days[0] == "2024-07-01T04:00:00Z"  # midnight New York (EDT)
    assert len(days) == 8  # hours=always: every calendar day
    simulator.set_hours("nyse")
    body = _get(
        simulator,
        "/v2/stocks/bars",
        {
            "symbols": "AAPL",
            "timeframe": "1Day",
            "start": "2024-07-01",
            "end": "2024-07-08",
        },
    ).json()
    days = [b["t"][:10] for b in body["bars"]["AAPL"]]
    assert days == [
        "2024-07-01",
        "2024-07-02",
        "2024-07-03",
        "2024-07-05",
        "2024-07-08",
    ]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"symbols": "AAPL"}, 422),  # no timeframe
        ({"symbols": "AAPL", "timeframe": "61Min"}, 422),
        ({"symbols": "AAPL", "timeframe": "1Min", "limit": "0"}, 422),
        ({"symbols": "AAPL", "timeframe": "1Min", "limit": "many"}, 400),
        ({"symbols": "AAPL", "timeframe": "1Min", "start": "yesterday"}, 400),
        (
            {
                "symbols": "AAPL",
                "timeframe": "1Min",
                "start": "2024-01-02",
                "end": "2024-01-01",
            },
            422,
        ),
        ({"symbols": "AAPL", "timeframe": "1Min", "feed": "nasdaq"}, 400),
        ({"symbols": "AAPL", "timeframe": "1Min", "page_token": "%%%"}, 400),
        ({"symbols": "AAPL", "timeframe": "1Min", "sort": "up"}, 422),
        ({"timeframe": "1Min"}, 400),
    ],
)
def test_bad_parameters_are_rejected_with_alpaca_errors(simulator, params, status):
    response = _get(simulator, "/v2/stocks/bars", params)
    assert response.status_code == status
    body = response.json()
    assert isinstance(body["code"], int) and body["message"]


def test_credentials_are_required_for_stocks_not_crypto(simulator):
    params = {
        "symbols": "AAPL",
        "timeframe": "1Min",
        "start": "2024-01-02",
        "end": "2024-01-02T05:05:00Z",
    }
    missing = _get(simulator, "/v2/stocks/bars", params, auth=False)
    assert (missing.status_code, missing.json()) == (403, {"message": "forbidden."})
    crypto = _get(
        simulator,
        "/v1beta3/crypto/us/bars",
        {
            "symbols": "BTC/USD",
            "timeframe": "1Min",
            "start": "2024-01-02",
            "end": "2024-01-02T05:04:00Z",
        },
        auth=False,
    )
    assert crypto.status_code == 200
    bars = crypto.json()["bars"]["BTC/USD"]
    assert len(bars) == 5 and isinstance(bars[0]["v"], float)


def test_injected_429_and_500(simulator):
    params = {
        "symbols": "AAPL",
        "timeframe": "1Min",
        "start": "2024-01-02",
        "end": "2024-01-02T05:05:00Z",
    }
    simulator.faults.update(rest_429_rate=1.0, retry_after=3)
    limited = _get(simulator, "/v2/stocks/bars", params)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    simulator.faults.update(rest_429_rate=0.0, rest_500_rate=1.0)
    failed = _get(simulator, "/v2/stocks/bars", params)
    assert failed.status_code == 500 and "message" in failed.json()
    simulator.faults.update(rest_500_rate=0.3)
    statuses = [
        _get(simulator, "/v2/stocks/bars", params).status_code for _ in range(40)
    ]
    assert (
        0 < statuses.count(500) < 40 and statuses.count(200) + statuses.count(500) == 40
    )


def test_latest_endpoints_single_and_multi(simulator):
    trade = _get(simulator, "/v2/stocks/AAPL/trades/latest").json()
    assert trade["symbol"] == "AAPL" and trade["trade"]["p"] > 0
    bars = _get(simulator, "/v2/stocks/bars/latest", {"symbols": "AAPL,MSFT"}).json()[
        "bars"
    ]
    assert set(bars) == {"AAPL", "MSFT"}
    minute = int(
        datetime.fromisoformat(bars["AAPL"]["t"].replace("Z", "+00:00")).timestamp()
    )
    assert (
        bars["AAPL"]["c"] == prices.minute_bar("AAPL", minute, seed=simulator.seed).c[0]
    )
    assert _get(simulator, "/v2/stocks/NOPE/quotes/latest").status_code == 404
    crypto = _get(
        simulator,
        "/v1beta3/crypto/us/latest/quotes",
        {"symbols": "BTC/USD"},
        auth=False,
    ).json()
    assert crypto["quotes"]["BTC/USD"]["ap"] > crypto["quotes"]["BTC/USD"]["bp"]


def test_aggregated_pages_ascending_and_descending_agree(simulator):
    base = {
        "symbols": "SPY,QQQ",
        "timeframe": "1Week",
        "start": "2019-01-01",
        "end": "2023-12-31",
        "limit": 97,
    }
    ascending, pages = _follow(simulator, base)
    descending, _ = _follow(simulator, {**base, "sort": "desc"})
    assert len(pages) > 2
    for symbol in ("QQQ", "SPY"):
        assert ascending[symbol] == descending[symbol][::-1]
        stamps = [b["t"] for b in ascending[symbol]]
        assert stamps[0] == "2019-01-07T05:00:00Z"  # first whole week: Monday, New York
        assert len(stamps) == len(set(stamps)) == 260
    weekly = ascending["SPY"][10]
    start = int(datetime.fromisoformat(weekly["t"].replace("Z", "+00:00")).timestamp())
    minutes = prices.minute_bars("SPY", start, start + 7 * 86400, seed=simulator.seed)
    assert (weekly["o"], weekly["c"], weekly["h"]) == (
        minutes.o[0],
        minutes.c[-1],
        minutes.h.max(),
    )
