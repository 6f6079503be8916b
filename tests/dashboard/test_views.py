"""Dashboard pages and watchlist editing over real HTTP requests (Django test
client), real PostgreSQL and Redis."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from marketdata.models import Watchlist
from marketdata.rollups import STEPS
from marketdata.selectors import session_latest
from marketdata.services import BarRow, bars_upsert, watchlist_create
from streaming.snapshots import snapshots_put
from tests.factories import PositionFactory, SnapshotFactory

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def lists(user, other_user, instruments):
    mine = watchlist_create(owner=user, name="Mine", symbols=["AAPL", "MSFT", "NVDA"])
    theirs = watchlist_create(owner=other_user, name="Theirs", symbols=["TSLA"])
    return mine, theirs


PAGES = [
    ("dashboard:index", []),
    ("dashboard:portfolio", []),
    ("dashboard:status", []),
    ("dashboard:instrument", ["AAPL"]),
    ("dashboard:search", []),
]


@pytest.mark.parametrize(("name", "args"), PAGES)
def test_pages_require_login(client, instruments, name, args):
    response = client.get(reverse(name, args=args))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_every_page_names_an_icon_that_is_served(client, user, client_for):
    """The browser's tab shows Tapeline's icon; without one it asks for
    /favicon.ico on every page and logs the 404 in the console."""
    staff = client_for(user)
    user.is_staff = user.is_superuser = True
    user.save()
    pages = ((client, reverse("login")), (staff, "/"), (staff, reverse("admin:index")))
    for who, path in pages:
        page = who.get(path).content.decode()
        (href,) = re.findall(
            r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page
        )
        icon = client.get(href)
        assert icon.status_code == 200, href
        assert b"<svg" in b"".join(icon.streaming_content)


def test_editing_endpoints_require_login(client, lists):
    mine, _ = lists
    for url in (
        reverse("dashboard:watchlist_create"),
        reverse("dashboard:watchlist_reorder"),
        reverse("dashboard:watchlist_rename", args=[mine.pk]),
        reverse("dashboard:watchlist_delete", args=[mine.pk]),
        reverse("dashboard:item_add", args=[mine.pk]),
        reverse("dashboard:item_remove", args=[mine.pk]),
        reverse("dashboard:item_reorder", args=[mine.pk]),
    ):
        response = client.post(url, {"name": "x", "symbol": "AAPL"})
        assert response.status_code == 302, url
    assert Watchlist.objects.filter(pk=mine.pk, name="Mine").exists()


def test_first_render_shows_snapshot_formatted_to_the_price_increment(
    user, client_for, instruments
):
    watchlist_create(owner=user, name="Crypto", symbols=["DOGE/USD", "AAPL"])
    snapshots_put(
        snapshots=[
            SnapshotFactory(
                symbol="DOGE/USD",
                last="0.123456789",
                bid="0.12345",
                ask="0.12347",
                change="-0.0021",
                change_pct="-1.67",
                volume="123456789",
            ),
        ]
    )
    html = client_for(user).get(reverse("dashboard:index")).content.decode()
    assert "0.12346" in html  # 5 decimals for a 0.00001 increment
    assert "0.00002" in html  # spread
    assert "-1.67%" in html
    assert "123.46M" in html
    # AAPL has no snapshot yet: skeleton cells, not an empty flash of zeros.
    aapl_row = html[html.index('data-symbol="AAPL"') :]
    aapl_row = aapl_row[: aapl_row.index("</tr>")]
    assert 'class="skel"' in aapl_row
    assert "waiting" in aapl_row


def test_stale_snapshot_is_marked_stale(user, client_for, instruments, settings):
    watchlist_create(owner=user, name="One", symbols=["AAPL"])
    snapshots_put(
        snapshots=[SnapshotFactory(symbol="AAPL", received_at=time.time() - 3600)]
    )
    html = client_for(user).get(reverse("dashboard:index")).content.decode()
    assert 'data-state="stale"' in html


def test_empty_states(user, client_for, instruments):
    client = client_for(user)
    assert (
        "No watchlists yet" in client.get(reverse("dashboard:index")).content.decode()
    )
    watchlist_create(owner=user, name="Empty", symbols=[])
    html = client.get(reverse("dashboard:index")).content.decode()
    assert "This watchlist is empty" in html


def test_sparkline_comes_from_the_sessions_minute_bars(user, client_for, instruments):
    watchlist_create(owner=user, name="One", symbols=["BTC/USD"])
    btc = instruments["BTC/USD"]
    session = session_latest(asset_class="crypto")
    start = session.open
    rows = [
        BarRow(
            instrument_id=btc.pk,
            timeframe="1m",
            ts=start + timedelta(minutes=i),
            open=Decimal(100 + i),
            high=Decimal(101 + i),
            low=Decimal(99 + i),
            close=Decimal(100 + i),
            volume=Decimal(1),
        )
        for i in range(0, 60)
        if start + timedelta(minutes=i) < timezone.now()
    ]
    bars_upsert(rows=rows, provider="simulator", origin="live", replace=True)
    html = client_for(user).get(reverse("dashboard:index")).content.decode()
    row = html[html.index('data-symbol="BTC/USD"') :]
    points = row[row.index("<polyline points=") :].split('"')[1]
    assert len(points.split()) >= 2
    # The session rises bar by bar, so the line ends higher than it starts.
    first_y = float(points.split()[0].split(",")[1])
    last_y = float(points.split()[-1].split(",")[1])
    assert last_y < first_y


def test_sparkline_points_are_each_buckets_last_close(instruments):
    from marketdata.selectors import session_sparklines

    btc = instruments["BTC/USD"]
    session = session_latest(asset_class="crypto")
    minutes = int((timezone.now() - session.open).total_seconds() // 60)
    if minutes < 30:
        pytest.skip("the crypto session is under 30 minutes old")
    rows = [
        BarRow(
            instrument_id=btc.pk,
            timeframe="1m",
            ts=session.open + timedelta(minutes=i),
            open=Decimal(1000 + i),
            high=Decimal(1000 + i),
            low=Decimal(1000 + i),
            close=Decimal(1000 + i),
            volume=Decimal(1),
        )
        for i in range(30)
    ]
    bars_upsert(rows=rows, provider="simulator", origin="live", replace=True)
    line = session_sparklines(instruments=[btc])["BTC/USD"]
    bucket = line["bucket"]  # minutes per point (a 24 h session: 12)
    assert bucket > 1
    closes = [1000 + i for i in range(30)]
    expected = [float(closes[min(b + bucket, 30) - 1]) for b in range(0, 30, bucket)]
    assert line["points"] == expected
    last_bucket_start = session.open + timedelta(minutes=(29 // bucket) * bucket)
    assert line["last"] == last_bucket_start.timestamp()
    assert line["start"] == session.open.timestamp()


def test_someone_elses_watchlist_is_404_everywhere(user, client_for, lists):
    _, theirs = lists
    client = client_for(user)
    assert (
        client.get(reverse("dashboard:index"), {"list": theirs.pk}).status_code == 404
    )
    for name, data in (
        ("dashboard:watchlist_rename", {"name": "Mine now"}),
        ("dashboard:watchlist_delete", {}),
        ("dashboard:item_add", {"symbol": "AAPL"}),
        ("dashboard:item_remove", {"symbol": "TSLA"}),
        ("dashboard:item_reorder", {"order": ["TSLA"]}),
    ):
        response = client.post(reverse(name, args=[theirs.pk]), data, **JSON)
        assert response.status_code == 404, name
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert [i.instrument.symbol for i in theirs.items.all()] == ["TSLA"]
    # Reordering with someone else's id leaves their list alone.
    client.post(reverse("dashboard:watchlist_reorder"), {"order": [theirs.pk]}, **JSON)
    position = theirs.position
    theirs.refresh_from_db()
    assert theirs.position == position


def test_csrf_is_enforced(user, lists):
    mine, _ = lists
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(
        reverse("dashboard:item_add", args=[mine.pk]), {"symbol": "AMD"}
    )
    assert response.status_code == 403
    assert not mine.items.filter(instrument__symbol="AMD").exists()


def test_create_rename_reorder_delete_watchlists(user, client_for, lists):
    mine, _ = lists
    client = client_for(user)
    response = client.post(reverse("dashboard:watchlist_create"), {"name": " Energy "})
    new = Watchlist.objects.get(owner=user, name="Energy")
    assert response.status_code == 302 and response.url.endswith(f"?list={new.pk}")

    duplicate = client.post(
        reverse("dashboard:watchlist_create"), {"name": "Energy"}, **JSON
    )
    assert duplicate.status_code == 400
    assert "already have" in duplicate.json()["error"]

    blank = client.post(
        reverse("dashboard:watchlist_rename", args=[new.pk]), {"name": "  "}, **JSON
    )
    assert blank.status_code == 400
    renamed = client.post(
        reverse("dashboard:watchlist_rename", args=[new.pk]), {"name": "Oil"}, **JSON
    )
    assert renamed.json() == {"ok": True, "id": new.pk, "name": "Oil"}

    client.post(
        reverse("dashboard:watchlist_reorder"), {"order": [new.pk, mine.pk]}, **JSON
    )
    html = client.get(reverse("dashboard:index")).content.decode()
    assert html.index(">Oil <") < html.index(">Mine <")

    client.post(reverse("dashboard:watchlist_delete", args=[new.pk]))
    assert not Watchlist.objects.filter(pk=new.pk).exists()


def test_add_remove_reorder_items(user, client_for, lists):
    mine, _ = lists
    client = client_for(user)
    snapshots_put(snapshots=[SnapshotFactory(symbol="AMD", last="150.5")])
    added = client.post(
        reverse("dashboard:item_add", args=[mine.pk]), {"symbol": "amd"}, **JSON
    )
    assert added.status_code == 200
    assert added.json()["symbol"] == "AMD"
    assert 'data-symbol="AMD"' in added.json()["row_html"]
    assert "150.50" in added.json()["row_html"]

    again = client.post(
        reverse("dashboard:item_add", args=[mine.pk]), {"symbol": "AMD"}, **JSON
    )
    assert again.status_code == 400
    unknown = client.post(
        reverse("dashboard:item_add", args=[mine.pk]), {"symbol": "ZZZZ"}, **JSON
    )
    assert unknown.status_code == 400 and "Unknown" in unknown.json()["error"]

    client.post(
        reverse("dashboard:item_reorder", args=[mine.pk]),
        {"order": ["AMD", "NVDA", "AAPL", "MSFT"]},
        **JSON,
    )
    assert [i.instrument.symbol for i in mine.items.all()] == [
        "AMD",
        "NVDA",
        "AAPL",
        "MSFT",
    ]

    removed = client.post(
        reverse("dashboard:item_remove", args=[mine.pk]), {"symbol": "NVDA"}, **JSON
    )
    assert removed.status_code == 200
    assert [i.instrument.symbol for i in mine.items.all()] == ["AMD", "AAPL", "MSFT"]
    html = client.get(reverse("dashboard:index")).content.decode()
    assert html.index('data-symbol="AMD"') < html.index('data-symbol="AAPL"')
    assert 'data-symbol="NVDA"' not in html


def test_search_ranks_exact_symbol_first(user, client_for, instruments):
    results = (
        client_for(user)
        .get(reverse("dashboard:search"), {"q": "amd"})
        .json()["results"]
    )
    assert results[0]["symbol"] == "AMD"
    assert results[0]["url"] == reverse("dashboard:instrument", args=["AMD"])
    by_name = client_for(user).get(reverse("dashboard:search"), {"q": "bitcoin"}).json()
    assert "BTC/USD" in [r["symbol"] for r in by_name["results"]]


def test_instrument_page(user, client_for, instruments):
    snapshots_put(
        snapshots=[
            SnapshotFactory(
                symbol="BTC/USD", last="65000.5", prev_close="64000", high="65500"
            )
        ]
    )
    client = client_for(user)
    response = client.get(reverse("dashboard:instrument", args=["BTC/USD"]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Market open" in html  # crypto trades around the clock
    assert "64,000.00" in html and "65,500.00" in html
    assert "/api/instruments/BTC/USD/bars" in html
    assert client.get(reverse("dashboard:instrument", args=["NOPE"])).status_code == 404


def test_instrument_page_timeframes_are_the_chart_timeframes(
    user, client_for, instruments
):
    """The buttons, and the bar lengths instrument.js reads from them, are
    rendered from `marketdata.rollups.STEPS`; an unknown ?tf= shows minutes."""
    client = client_for(user)
    url = reverse("dashboard:instrument", args=["BTC/USD"])
    buttons = re.findall(
        r'data-tf="([^"]+)" data-seconds="(\d+)" aria-pressed="(\w+)"',
        client.get(url, {"tf": "15m"}).text,
    )
    assert [(tf, int(seconds)) for tf, seconds, _ in buttons] == [
        (name, int(step.total_seconds())) for name, step in STEPS.items()
    ]
    assert [tf for tf, _, pressed in buttons if pressed == "true"] == ["15m"]
    html = client.get(url, {"tf": "2m"}).text
    assert 'data-tf="1m" data-seconds="60" aria-pressed="true"' in html


def test_portfolio_values_positions_with_latest_prices(
    user, other_user, client_for, instruments
):
    PositionFactory(
        owner=user,
        instrument=instruments["AAPL"],
        quantity=Decimal(10),
        average_cost=Decimal(100),
    )
    PositionFactory(
        owner=user,
        instrument=instruments["MSFT"],
        quantity=Decimal(2),
        average_cost=Decimal(400),
    )
    PositionFactory(
        owner=other_user,
        instrument=instruments["NVDA"],
        quantity=Decimal(1),
        average_cost=Decimal(1),
    )
    snapshots_put(
        snapshots=[
            SnapshotFactory(symbol="AAPL", last="110", prev_close="105"),
            SnapshotFactory(symbol="MSFT", last="450", prev_close="460"),
        ]
    )
    html = client_for(user).get(reverse("dashboard:portfolio")).content.decode()
    assert "2,000.00" in html  # 1,100 + 900
    assert "+30.00" in html  # day: +50 - 20
    assert "+200.00" in html  # total: +100 + 100
    assert "55.0%" in html and "45.0%" in html
    assert "NVDA" not in html


def test_status_page_is_staff_only(user, staff_user, client_for):
    assert client_for(user).get(reverse("dashboard:status")).status_code == 403
    response = client_for(staff_user).get(reverse("dashboard:status"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Database" in html and "Redis" in html
    assert "No stream worker is reporting" in html


def test_status_page_shows_stream_connections(staff_user, client_for):
    import orjson

    from core.redis import redis_client
    from streaming.selectors import health_key

    worker = {
        "id": "host:1:0/1",
        "shard": "0/1",
        "state": "running",
        "reported_at": time.time(),
        "uptime_s": 12.0,
        "instruments": 3,
        "events_per_s": 40.0,
        "published_per_s": 30.0,
        "freshness": {"live": 3},
        "connections": [
            {
                "id": "simulator:crypto",
                "state": "backoff",
                "msgs_per_s": {"frames": 12.5},
                "reconnects": 4,
                "lag_ms": {"p50": 3.0, "p99": 9.5},
                "last_message_age_s": 7.4,
                "subscribed": 3,
                "last_error": "connection reset",
            }
        ],
    }
    redis_client().hset(health_key(), worker["id"], orjson.dumps(worker))
    html = client_for(staff_user).get(reverse("dashboard:status")).content.decode()
    row = html[html.index('data-id="simulator:crypto"') :]
    row = row[: row.index("</tr>")]
    assert "backoff" in row and "connection reset" in row
    assert ">4<" in row  # reconnects
    assert "9.5 ms" in row and "7.4 s" in row
    assert "degraded" in html  # a worker runs but a connection is not live


@pytest.mark.parametrize("on", [True, False])
def test_test_hooks_are_rendered_only_when_on(
    user, client_for, instruments, settings, on
):
    # static/js/paint_probe.js (and the other hooks) read the attribute.
    settings.BROWSER_TEST_HOOKS = on
    html = client_for(user).get(reverse("dashboard:index")).content.decode()
    assert ('data-test-hooks="1"' in html) is on
