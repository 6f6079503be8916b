"""Chart patterns (`marketdata.patterns`): each pattern found at the bar that
confirms it on a series with the pattern planted, missed when one tolerance
is broken by a hair (0.1 % past it), never using later bars; and the
endpoint that serves them to the chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone

from api.services import api_token_create
from marketdata.indicators import atr
from marketdata.patterns import (
    LOOKBACK_BARS,
    PATTERN_KINDS,
    detect,
    flags,
    levels,
    lines,
    reversals,
    triangles,
)
from marketdata.patterns.base import BREAK_MARGIN_ATR
from marketdata.services import bars_upsert
from tests.marketdata.planted import MIRRORED, PLANTED, WICK, bars_of, mirror

HAIR = 0.001  # 0.1 % of a tolerance


def unit_at(bars, index: int) -> float:
    """ATR(14) at `index`: the pattern's unit when its first point is there."""
    high, low, close = (
        np.array([b[k] for b in bars]) for k in ("high", "low", "close")
    )
    return float(atr(high, low, close, 14)[index])


def found(bars, kind: str) -> list:
    return [d for d in detect(bars) if d.kind == kind]


def random_walk(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    bars = bars_of([(0, closes[0]), (1, closes[0])])[:1]
    for i in range(1, count):
        o, c = closes[i - 1], closes[i]
        bars.append(
            {
                "ts": bars[0]["ts"] + timedelta(hours=i),
                "open": o,
                "high": max(o, c) * (1 + abs(rng.normal(0, 0.004))),
                "low": min(o, c) * (1 - abs(rng.normal(0, 0.004))),
                "close": c,
                "volume": 1.0,
            }
        )
    return bars


# --- planted patterns, both directions --------------------------------------------


@pytest.mark.parametrize("flip", [False, True], ids=["bullish-rule", "mirrored"])
@pytest.mark.parametrize("name", list(PLANTED))
def test_planted_pattern_found_at_its_confirming_bar(name, flip):
    waypoints, confirmed, point_bars = PLANTED[name]
    kind = MIRRORED[name] if flip else name
    bars = bars_of(mirror(waypoints) if flip else waypoints)
    hits = found(bars, kind)
    assert [d.confirmed_index for d in hits] == [confirmed]
    hit = hits[0]
    assert hit.confirmed_at == bars[confirmed]["ts"]
    assert hit.label == PATTERN_KINDS[kind]
    assert {p.index for p in hit.points} >= set(point_bars)
    assert all(p.time == bars[p.index]["ts"] for p in hit.points)
    assert all(type(p.price) is float for p in hit.points)  # JSON-ready
    assert type(hit.confidence) is float
    assert 0.5 <= hit.confidence <= 1.0
    assert hit.explain.startswith(hit.label) and hit.explain.endswith(".")
    assert "\n" not in hit.explain
    # Nothing of that kind is known one bar earlier.
    assert not [d for d in found(bars[:confirmed], kind) if d.confirmed_index >= 0]


def test_directions_and_roles_of_a_double_top_and_bottom():
    top = found(bars_of(PLANTED["double_top"][0]), "double_top")[0]
    assert top.direction == "bearish"
    roles = [(p.index, p.role, p.price) for p in top.points]
    assert roles[:3] == [
        (40, "peak", 110 + WICK),
        (55, "trough", 102 - WICK),
        (70, "peak", 110 + WICK),
    ]
    assert [p.price for p in top.points if p.role == "neckline"] == [101.75, 101.75]
    bottom = found(bars_of(mirror(PLANTED["double_top"][0])), "double_bottom")[0]
    assert bottom.direction == "bullish"
    assert [(p.role, p.price) for p in bottom.points[:3]] == [
        ("trough", 89.75),
        ("peak", 98.25),
        ("trough", 89.75),
    ]
    assert "below the 101.75 neckline" in top.explain
    assert "above the 98.25 neckline" in bottom.explain


def test_trend_line_break_confirmed_by_the_close_through_it():
    bars = bars_of(PLANTED["trendline_up"][0])
    u = unit_at(bars, 20)
    line = [89.75 + (i - 20) * 4 / 30 for i in range(len(bars))]
    first_below = next(
        i
        for i in range(84, len(bars))
        if bars[i]["close"] < line[i] - BREAK_MARGIN_ATR * u
    )
    breaks = found(bars, "trendline_up_break")
    assert [d.confirmed_index for d in breaks] == [first_below] == [104]
    assert breaks[0].direction == "bearish"
    mirrored = found(
        bars_of(mirror(PLANTED["trendline_up"][0])), "trendline_down_break"
    )
    assert [d.confirmed_index for d in mirrored] == [104]


# --- tolerances broken by a hair ----------------------------------------------------


def inside_and_outside(edge: float) -> tuple[float, float]:
    return edge * (1 - HAIR), edge * (1 + HAIR)


@pytest.mark.parametrize("flip", [False, True])
def test_double_top_peaks_apart_by_the_tolerance(flip):
    base = PLANTED["double_top"][0]
    u = unit_at(bars_of(base), 40)
    inside, outside = inside_and_outside(reversals.DOUBLE_TOL_ATR * u)

    def bars(gap):
        path = [(i, p + gap if i == 70 else p) for i, p in base]
        return bars_of(mirror(path) if flip else path)

    kind = "double_bottom" if flip else "double_top"
    assert found(bars(inside), kind) and not found(bars(outside), kind)


@pytest.mark.parametrize("flip", [False, True])
def test_head_and_shoulders_shoulders_apart_by_the_tolerance(flip):
    base = PLANTED["head_and_shoulders"][0]
    u = unit_at(bars_of(base), 40)
    inside, outside = inside_and_outside(reversals.HS_SHOULDER_TOL_ATR * u)

    def bars(gap):
        path = [(i, p + gap if i == 94 else p) for i, p in base]
        return bars_of(mirror(path) if flip else path)

    kind = "inverse_head_and_shoulders" if flip else "head_and_shoulders"
    assert found(bars(inside), kind) and not found(bars(outside), kind)


def test_ascending_triangle_top_no_longer_flat():
    base = PLANTED["ascending_triangle"][0]
    u = unit_at(bars_of(base), 20)
    # The top runs through the highs at bars 35 and 65; over the shape's 60
    # bars it moves twice the second high's rise.
    inside, outside = inside_and_outside(triangles.TRI_FLAT_ATR * u / 2)

    def bars(rise):
        return bars_of([(i, p + rise if i == 65 else p) for i, p in base])

    assert found(bars(inside), "ascending_triangle")
    assert not found(bars(outside), "ascending_triangle")


def test_symmetrical_triangle_top_not_falling_enough():
    base = PLANTED["symmetrical_triangle"][0]
    u = unit_at(bars_of(base), 20)
    steep, shallow = inside_and_outside(triangles.TRI_SLOPE_ATR * u / 2)

    def bars(fall):  # the second high, `fall` below the first (112)
        return bars_of([(i, 112 - fall if i == 65 else p) for i, p in base])

    # Falling at least the slope limit over the shape: a triangle; a hair
    # less is neither flat nor falling.
    assert found(bars(shallow * 1.0), "symmetrical_triangle")
    assert not found(bars(steep), "symmetrical_triangle")


def test_bull_flag_pole_shorter_than_the_minimum():
    u = unit_at(bars_of(PLANTED["bull_flag"][0]), 25)

    def bars(pole):  # pole: high of bar 35 minus low of bar 25 = rise + 2 wicks
        rise = pole - 2 * WICK
        return bars_of(
            [
                (0, 100),
                (25, 95),
                (35, 95 + rise),
                (45, 95 + 0.7 * rise),
                (46, 96 + rise),
                (50, 97 + rise),
            ]
        )

    inside, outside = inside_and_outside(flags.POLE_MIN_ATR * u)
    assert found(bars(outside), "bull_flag")  # a longer pole
    assert not found(bars(inside), "bull_flag")


@pytest.mark.parametrize("flip", [False, True])
def test_pennant_giving_back_more_than_half_the_pole(flip):
    base = PLANTED["bull_pennant"][0]
    # Pole: 94.75 -> 105.25; the dip at bar 36 sets the consolidation's low.
    inside, outside = inside_and_outside(flags.FLAG_MAX_RETRACE * 10.5)

    def bars(retrace):
        path = [(i, 105.25 - retrace + WICK if i == 36 else p) for i, p in base]
        return bars_of(mirror(path) if flip else path)

    kind = "bear_pennant" if flip else "bull_pennant"
    assert found(bars(inside), kind) and not found(bars(outside), kind)


@pytest.mark.parametrize("flip", [False, True])
def test_level_third_touch_off_by_the_tolerance(flip):
    base = PLANTED["support"][0]
    u = unit_at(bars_of(base), 15)
    inside, outside = inside_and_outside(levels.LEVEL_TOL_ATR * u)

    def bars(off):
        path = [(i, p + off if i == 75 else p) for i, p in base]
        return bars_of(mirror(path) if flip else path)

    kind = "resistance" if flip else "support"
    assert found(bars(inside), kind) and not found(bars(outside), kind)


@pytest.mark.parametrize("flip", [False, True])
def test_trend_line_third_touch_off_the_line(flip):
    base = PLANTED["trendline_up"][0]
    u = unit_at(bars_of(base), 20)
    inside, outside = inside_and_outside(lines.LINE_TOL_ATR * u)

    def bars(off):
        path = [(i, p + off if i == 80 else p) for i, p in base]
        return bars_of(mirror(path) if flip else path)

    kind = "trendline_down" if flip else "trendline_up"
    assert found(bars(inside), kind) and not found(bars(outside), kind)


def test_trend_line_break_needs_the_margin():
    base = PLANTED["trendline_up"][0][:-1]  # up to the high at bar 95
    u = unit_at(bars_of(base + [(110, 92)]), 20)
    line_104 = 89.75 + (104 - 20) * 4 / 30
    inside, outside = inside_and_outside(BREAK_MARGIN_ATR * u)

    def bars(depth):  # a dip closing `depth` below the line at bar 104, then up
        return bars_of(base + [(104, line_104 - depth), (112, 112)])

    assert [d.confirmed_index for d in found(bars(outside), "trendline_up_break")] == [
        104
    ]
    assert not found(bars(inside), "trendline_up_break")


# --- no look-ahead, live window, inputs ---------------------------------------------


def test_no_look_ahead_on_a_random_walk():
    bars = random_walk(2500, seed=11)
    full = detect(bars)
    assert {d.kind for d in full} >= {
        "double_top",
        "double_bottom",
        "support",
        "bull_flag",
    }
    for k in sorted({d.confirmed_index for d in full})[::3] + [600, 1300, 2100]:
        prefix = detect(bars[: k + 1])
        assert prefix == [d for d in full if d.confirmed_index <= k], k
        assert [d for d in prefix if d.confirmed_index == k] == [
            d for d in full if d.confirmed_index == k
        ]


def test_live_window_of_lookback_bars_finds_what_the_last_bar_confirmed():
    bars = random_walk(2500, seed=12)
    checked = 0
    for d in detect(bars):
        k = d.confirmed_index
        if k < LOOKBACK_BARS:
            continue
        window = bars[k + 1 - LOOKBACK_BARS : k + 1]
        live = [x for x in detect(window) if x.confirmed_index == len(window) - 1]
        assert (d.kind, d.explain) in {(x.kind, x.explain) for x in live}
        checked += 1
    assert checked > 50


@dataclass
class BarObject:
    ts: object
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def test_objects_with_decimals_and_kind_filter():
    bars = bars_of(PLANTED["double_top"][0])
    objects = [
        BarObject(**{k: v if k == "ts" else Decimal(str(v)) for k, v in b.items()})
        for b in bars
    ]
    assert [d.kind for d in detect(objects, kinds={"double_top"})] == ["double_top"]
    assert detect(objects) == detect(bars)
    assert detect(bars[:10]) == []
    with pytest.raises(ValueError, match="unknown pattern kind"):
        detect(bars, kinds=["cup_and_handle"])


# --- the endpoint -------------------------------------------------------------------


@pytest.fixture
def planted_btc(instruments):
    """The double top as BTC/USD minutes ending a minute ago."""
    btc = instruments["BTC/USD"]
    path = PLANTED["double_top"][0]
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(
        minutes=path[-1][0] + 1
    )
    bars = bars_of(path, start=start)
    rows = [
        (
            btc.id,
            "1m",
            b["ts"],
            *(
                Decimal(str(round(b[k], 8)))
                for k in ("open", "high", "low", "close", "volume")
            ),
            None,
            1,
        )
        for b in bars
    ]
    bars_upsert(rows=rows, provider="test")
    return bars


def url(symbol="BTC/USD"):
    return f"/api/instruments/{symbol}/patterns"


@pytest.mark.django_db
def test_endpoint_serves_the_planted_double_top(client, user, planted_btc):
    client.force_login(user)
    response = client.get(
        url(), {"timeframe": "1m", "kinds": "double_top,double_bottom"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["bars"] == len(planted_btc) and body["message"] is None
    (top,) = body["detections"]
    assert top["kind"] == "double_top" and top["direction"] == "bearish"
    assert top["t"] == int(planted_btc[82]["ts"].timestamp())
    assert top["explain"].startswith("Double top: two peaks at 110.25 and 110.25")
    assert top["lines"][0]["role"] == "neckline"
    neckline = top["lines"][0]["points"]
    assert [p["price"] for p in neckline] == [101.75, 101.75]
    assert [p["t"] for p in neckline] == [
        int(planted_btc[i]["ts"].timestamp()) for i in (55, 82)
    ]


@pytest.mark.django_db
def test_endpoint_takes_a_token_and_refuses_strangers(user, planted_btc):
    token = api_token_create(user=user, name="script", scope="read")[1]
    assert Client().get(url(), {"timeframe": "1m"}).status_code == 401
    bad = Client(HTTP_AUTHORIZATION="Bearer tl_bad")
    assert bad.get(url(), {"timeframe": "1m"}).status_code == 401
    response = Client(HTTP_AUTHORIZATION=f"Bearer {token}").get(
        url(), {"timeframe": "1m"}
    )
    assert response.status_code == 200
    assert "double_top" in {d["kind"] for d in response.json()["detections"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, message",
    [
        ({"timeframe": "2h"}, "timeframe: expected one of 1m, 5m, 15m, 1h, 1d"),
        ({"limit": "0"}, "limit: must be between 1 and 5000"),
        ({"start": "yesterday"}, "start: expected an ISO 8601"),
        ({"kinds": "double_top,cup"}, "kinds: unknown cup"),
        ({"indicators": "sma:20"}, "unknown parameter: indicators"),
        ({"colour": "red"}, "unknown parameter: colour"),
    ],
)
def test_endpoint_bad_input_is_a_clear_400(client, user, instruments, params, message):
    client.force_login(user)
    response = client.get(url(), params)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.django_db
def test_endpoint_unknown_symbol_and_timeframe_without_bars(client, user, planted_btc):
    client.force_login(user)
    assert client.get(url("NOPE")).status_code == 404
    body = client.get(url("ETH/USD"), {"timeframe": "1h"}).json()
    assert body["detections"] == []
    assert body["message"].startswith("No 1h bars stored for ETH/USD")


# --- the saved "Patterns" toggle ------------------------------------------------------


@pytest.mark.django_db
def test_patterns_toggle_saved_in_the_chart_settings(client, user, instruments):
    client.force_login(user)
    page = client.get("/instruments/AAPL/").content.decode()
    assert '<input type="checkbox" name="patterns">' in page
    assert 'data-url="/api/instruments/AAPL/patterns"' in page
    document = {"indicators": {"rsi": {"on": True}}, "patterns": {"on": True}}
    response = client.post("/chart/settings", document, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["chart"]["patterns"] == {"on": True}
    assert response.json()["spec"] == "rsi:14"
    page = client.get("/instruments/AAPL/").content.decode()
    assert '<input type="checkbox" name="patterns" checked>' in page
    # The page saves the toggle alone: the indicators stay as saved.
    response = client.post(
        "/chart/settings", {"patterns": {"on": False}}, content_type="application/json"
    )
    assert response.json()["chart"]["patterns"] == {"on": False}
    assert response.json()["spec"] == "rsi:14"
    client.post("/chart/settings", document, content_type="application/json")
    for bad, message in [
        ({"patterns": {"on": "yes"}}, "patterns.on: expected true or false"),
        ({"patterns": {"on": True, "kinds": []}}, 'patterns: expected {"on": true}'),
        ({"patterns": True}, 'patterns: expected {"on": true} or {"on": false}'),
    ]:
        response = client.post("/chart/settings", bad, content_type="application/json")
        assert response.status_code == 400 and message in response.json()["error"]
    # Nothing of the refused documents was saved.
    page = client.get("/instruments/AAPL/").content.decode()
    assert '<input type="checkbox" name="patterns" checked>' in page
