"""Session sparklines kept in Redis (`marketdata.sparklines`): a page reads
them without scanning bars, and whatever happens to Redis (a flush, a line
built while the worker stored minutes, a history load afterwards) the line a
page shows is the one the stored bars give."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.redis import redis_client
from marketdata.selectors import session_latest, session_sparklines
from marketdata.services import BarRow, bars_upsert
from marketdata.sparklines import sparkline_key, sparklines_get
from streaming.services import live_bars_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def btc(instruments):
    session = session_latest(asset_class="crypto")
    if timezone.now() - session.open < timedelta(minutes=90):
        pytest.skip("the crypto session is under 90 minutes old")
    return instruments["BTC/USD"], session.open


def history(instrument, start, minutes, base: int) -> None:
    bars_upsert(
        rows=[
            BarRow(
                instrument_id=instrument.pk,
                timeframe="1m",
                ts=start + timedelta(minutes=i),
                open=Decimal(base + i),
                high=Decimal(base + i),
                low=Decimal(base + i),
                close=Decimal(base + i),
                volume=Decimal(1),
            )
            for i in minutes
        ],
        provider="simulator",
        replace=True,
    )


def live(instrument, start, minutes, price: str) -> None:
    """Minutes stored the way the stream worker stores them."""
    rows = [
        (instrument.pk, "1m", start + timedelta(minutes=i), Decimal(price),
         Decimal(price), Decimal(price), Decimal(price), Decimal(2), None, None)
        for i in minutes
    ]  # fmt: skip
    live_bars_store(rows={"simulator": rows}, partial={})


def bar_queries(context: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in context.captured_queries if "marketdata_bar" in q["sql"]]


def test_the_line_comes_from_redis_and_matches_the_stored_bars(btc):
    instrument, start = btc
    history(instrument, start, range(0, 40), base=1000)
    first = sparklines_get(instruments=[instrument])  # seeds Redis from the bars
    assert first == session_sparklines(instruments=[instrument])
    # The worker stores later minutes, including a correction of the last one
    # and a minute that lands in a bucket already shown.
    live(instrument, start, range(40, 75), price="1234.5")
    live(instrument, start, [74], price="1240.25")

    with CaptureQueriesContext(connection) as queries:
        line = sparklines_get(instruments=[instrument])
    assert bar_queries(queries) == []  # no bar scan: Redis had it
    expected = session_sparklines(instruments=[instrument])["BTC/USD"]
    assert line["BTC/USD"] == expected
    assert expected["points"][-1] == 1240.25
    assert len(expected["points"]) > len(first["BTC/USD"]["points"])


def test_a_redis_flush_falls_back_to_the_bars_and_reseeds(btc):
    instrument, start = btc
    history(instrument, start, range(0, 50), base=500)
    sparklines_get(instruments=[instrument])
    redis_client().flushdb()
    # Minutes the worker stores into the empty Redis make a partial line,
    # which must not be shown as the whole session.
    live(instrument, start, range(50, 60), price="777")
    assert redis_client().exists(sparkline_key(instrument.pk))  # partial: hash only

    with CaptureQueriesContext(connection) as queries:
        line = sparklines_get(instruments=[instrument])["BTC/USD"]
    assert bar_queries(queries)  # rebuilt from the database
    expected = session_sparklines(instruments=[instrument])["BTC/USD"]
    assert line == expected
    assert expected["points"][0] == float(500 + expected["bucket"] - 1)
    assert expected["points"][-1] == 777.0

    with CaptureQueriesContext(connection) as queries:
        again = sparklines_get(instruments=[instrument])["BTC/USD"]
    assert bar_queries(queries) == []  # seeded again
    assert again == expected


def test_bars_written_by_a_load_replace_the_line(
    btc, django_capture_on_commit_callbacks
):
    instrument, start = btc
    history(instrument, start, range(0, 30), base=100)
    sparklines_get(instruments=[instrument])
    # A backfill corrects minutes already on the line.
    with django_capture_on_commit_callbacks(execute=True):
        history(instrument, start, range(0, 30), base=300)
    line = sparklines_get(instruments=[instrument])["BTC/USD"]
    assert line == session_sparklines(instruments=[instrument])["BTC/USD"]
    assert line["points"][-1] == 329.0
