"""The worker's steps called directly, with real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import orjson
import pytest
from channels.layers import get_channel_layer

from core.groups import symbol_group
from marketdata.events import (
    PLAN_LIMIT,
    UNKNOWN_SYMBOL,
    Control,
    ControlType,
    Status,
    Trade,
)
from marketdata.models import Bar, Instrument
from streaming.connection import State
from streaming.restore import subscription_contexts
from streaming.snapshots import snapshots_get
from tests.streaming.helpers import NOW, quote, trade


@pytest.fixture
def aapl(instruments):
    return instruments["AAPL"]


def test_trades_and_quotes_update_the_snapshot_and_unchanged_quotes_are_dropped(
    aapl, make_worker, attach
):
    worker, connection = make_worker()
    state = attach(worker, aapl, connection)
    worker.process(
        connection,
        NOW.timestamp() + 1,
        [
            trade("AAPL", 0, "100.00", "10", "t1"),
            trade("AAPL", 1, "101.50", "5", "t2"),
            trade("AAPL", 1, "101.50", "5", "t2"),  # duplicate id
            trade("AAPL", 0.5, "99.00", "1", "t3"),  # out of order
            quote("AAPL", 1, "101.40", "101.60"),
            quote("AAPL", 2, "101.40", "101.60"),  # same bid/ask: dropped
            quote("AAPL", 1.5, "90.00", "91.00"),  # older than the last quote
        ],
    )
    stats = connection.stats
    assert stats.duplicates == 1 and stats.out_of_order == 2
    assert stats.quotes_unchanged == 1 and stats.by_kind["quote"] == 3
    doc = state.document()
    assert doc["last"] == "101.50"  # the out-of-order trade does not become last
    assert (doc["open"], doc["high"], doc["low"], doc["volume"]) == (
        "100.00",
        "101.50",
        "99.00",
        "16",
    )
    assert (doc["bid"], doc["ask"]) == ("101.40", "101.60")
    assert doc["minute"]["volume"] == "16"


def test_events_for_symbols_not_subscribed_are_counted_not_applied(
    aapl, make_worker, attach
):
    worker, connection = make_worker()
    attach(worker, aapl, connection)
    worker.process(connection, NOW.timestamp(), [trade("ZZZZ", 0, "1")])
    assert connection.stats.unknown_symbols == 1
    assert "ZZZZ" not in worker.states


def test_halt_status_sets_freshness(aapl, make_worker, attach):
    worker, connection = make_worker()
    state = attach(worker, aapl, connection)
    worker.process(
        connection,
        NOW.timestamp(),
        [Status(symbol="AAPL", ts=NOW, provider="simulator", halted=True, code="H")],
    )
    assert state.freshness == "halted" and state.document()["halted"] is True


def _subscription_error(**fields):
    return Control(ControlType.SUBSCRIPTION_ERROR, "simulator", **fields)


class SentFrames(list):
    """A live session's socket for a connection (`use_socket`): keeps what
    the connection sends."""

    send = list.append


def live(connection) -> SentFrames:
    """`connection` in a live session over a socket that keeps its frames."""
    sent = SentFrames()
    connection.use_socket(sent)
    connection.state = State.LIVE
    return sent


def _subscriptions_step(worker):
    async def run():
        worker.loop = asyncio.get_running_loop()
        await worker.step_subscriptions()

    asyncio.run(run())


@pytest.mark.transactional
def test_a_symbol_named_unknown_is_marked_with_a_retry(aapl, make_worker, attach):
    worker, connection = make_worker()
    attach(worker, aapl, connection)
    connection.set_symbols({"AAPL"})
    error = _subscription_error(
        message="invalid symbol", symbols=("AAPL",), reason=UNKNOWN_SYMBOL
    )
    connection.on_rejected(error)
    worker.process(connection, NOW.timestamp(), [error])
    _subscriptions_step(worker)

    aapl.refresh_from_db()
    assert "invalid symbol" in aapl.stream_error
    assert aapl.stream_error_retries == 1
    retry_in = aapl.stream_error_retry_at - aapl.stream_error_at
    assert retry_in == timedelta(minutes=15)
    assert "AAPL" in connection.rejected


@pytest.mark.transactional
def test_a_plan_limit_refusal_never_marks_the_instruments(aapl, make_worker, attach):
    worker, connection = make_worker()
    attach(worker, aapl, connection)
    live(connection)
    connection.set_symbols({"AAPL"})  # one subscribe request, for AAPL
    assert connection.last_batch == ("AAPL",)
    error = _subscription_error(
        code=405, message="symbol limit exceeded", reason=PLAN_LIMIT
    )
    connection.on_rejected(error)
    worker.process(connection, NOW.timestamp(), [error])
    _subscriptions_step(worker)

    aapl.refresh_from_db()
    assert aapl.stream_error == ""
    assert "AAPL" in connection.held_back and "AAPL" not in connection.rejected
    assert connection.limit.limit() == 0  # nothing fits: the batch of 1 was refused


def test_finnhub_refusals_straddling_a_new_plan_refuse_what_is_still_subscribed(
    make_worker,
):
    """Finnhub answers each subscribe over the plan's limit with one error
    naming no symbol. When the worker re-plans between two of those errors
    (it has held back the first refused ones), the later errors still refuse
    the tail of what is subscribed: the worker ends with exactly the plan's 50
    (it kept 52 that Finnhub never streamed, in a loaded CI run)."""
    _, connection = make_worker()
    connection.provider.plan_limit_per_message = True  # as Finnhub's adapter
    sent = live(connection)
    symbols = [f"S{i:02d}" for i in range(60)]
    connection.set_symbols(symbols)
    assert connection.subscribed == set(symbols) and sent

    def refuse():
        connection.on_rejected(
            _subscription_error(
                message="Subscribing to too many symbols", reason=PLAN_LIMIT
            )
        )

    refuse()
    refuse()
    connection.set_symbols(symbols[:58])  # the budget's next plan, mid-answer
    for _ in range(8):
        refuse()
    assert connection.subscribed == set(symbols[:50])


def test_publish_is_coalesced_to_the_latest_state_with_increasing_seq(
    aapl, make_worker, attach
):
    """20 trades 62.5 ms apart at 4 messages/s, on a clock the test drives (a
    loaded machine cannot stretch it; binary fractions, so no rounding moves
    a boundary): two messages back to back (the burst), then one each 250 ms
    with the latest state, and the last state once the interval has passed."""
    worker, connection = make_worker(publish_hz=4)
    attach(worker, aapl, connection)
    publisher = worker.publisher
    layer = get_channel_layer()

    async def run():
        channel = await layer.new_channel()
        await layer.group_add(symbol_group("AAPL"), channel)
        for i in range(20):
            worker.process(
                connection, NOW.timestamp(), [trade("AAPL", i, f"{100 + i}.00")]
            )
            await publisher.publish_due(now=i * 0.0625)
        await publisher.publish_due(now=2.0)
        return [
            await asyncio.wait_for(layer.receive(channel), 10)
            for _ in range(publisher.published)
        ]

    messages = asyncio.run(run())
    assert all(m["type"] == "market.update" for m in messages)
    seqs = [m["snapshot"]["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1))
    lasts = [m["snapshot"]["last"] for m in messages]
    assert lasts == [
        "100.00",
        "101.00",
        "104.00",
        "108.00",
        "112.00",
        "116.00",
        "119.00",
    ]
    assert snapshots_get(symbols=["AAPL"])["AAPL"]["seq"] == seqs[-1]


@pytest.mark.transactional
def test_closed_minutes_are_stored_with_rollups(aapl, make_worker, attach):
    worker, connection = make_worker()
    attach(worker, aapl, connection)
    start = NOW.replace(second=0) - timedelta(minutes=3)
    events = []
    for minute in range(2):
        for second, price in ((1, "10"), (20, "12"), (40, "9"), (59, "11")):
            events.append(
                Trade(
                    symbol="AAPL",
                    ts=start + timedelta(minutes=minute, seconds=second),
                    price=D(price),
                    size=D("2"),
                    provider="simulator",
                )
            )
    worker.process(connection, NOW.timestamp(), events)

    async def run():
        worker.loop = asyncio.get_running_loop()
        await worker.step_store_bars()

    asyncio.run(run())
    bars = list(Bar.objects.filter(instrument=aapl, timeframe="1m").order_by("ts"))
    assert [b.ts for b in bars] == [start, start + timedelta(minutes=1)]
    assert all(
        (b.open, b.high, b.low, b.close, b.volume, b.origin)
        == (D("10"), D("12"), D("9"), D("11"), D("8"), "live")
        for b in bars
    )
    assert worker.bars_stored == 2


def test_print_events_writes_one_json_line_per_event(aapl, make_worker, attach):
    out = io.StringIO()
    worker, connection = make_worker(print_events=True, stdout=out)
    attach(worker, aapl, connection)
    worker.process(
        connection,
        NOW.timestamp(),
        [trade("AAPL", 0, "1.5", "3", "x1"), quote("AAPL", 0, "1", "2")],
    )
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["kind"] for line in lines] == ["trade", "quote"]
    assert lines[0]["price"] == "1.5" and lines[0]["symbol"] == "AAPL"


def test_health_document_reports_connections(aapl, make_worker, attach):
    worker, connection = make_worker()
    attach(worker, aapl, connection)
    worker.connections[connection.key] = connection
    worker.process(connection, NOW.timestamp() + 0.05, [trade("AAPL", 0, "1")])
    doc = worker.health()
    [conn] = doc["connections"]
    assert conn["provider"] == "simulator" and conn["totals"]["trade"] == 1
    assert conn["lag_ms"]["samples"] == 1
    assert doc["instruments"] == 1 and doc["state"] == "running"


def test_instruments_to_stream_ranks_and_flags_marked_symbols(aapl, user):
    from django.utils import timezone

    from marketdata.services import watchlist_create
    from streaming.selectors import instruments_to_stream

    watchlist_create(owner=user, name="w", symbols=["AAPL", "MSFT"])
    rows = {r["symbol"]: r for r in instruments_to_stream(extra_symbols={"NVDA"})}
    assert sorted(rows) == ["AAPL", "MSFT", "NVDA"]
    assert rows["AAPL"]["holders"] == 1 and rows["NVDA"]["holders"] == 0
    assert rows["NVDA"]["alert"] and not rows["AAPL"]["alert"]
    assert not rows["AAPL"]["stream_error"]

    later = timezone.now() + timedelta(minutes=15)
    Instrument.objects.filter(symbol="MSFT").update(
        stream_error="invalid symbol", stream_error_retry_at=later
    )
    msft = {r["symbol"]: r for r in instruments_to_stream()}["MSFT"]
    assert msft["stream_error"] and not msft["retry_due"]
    Instrument.objects.filter(symbol="MSFT").update(
        stream_error_retry_at=timezone.now() - timedelta(seconds=1)
    )
    assert {r["symbol"]: r for r in instruments_to_stream()}["MSFT"]["retry_due"]


def test_instruments_to_stream_reads_fields_as_the_orm_does(aapl, user):
    """The compiled statement's rows carry the model's values: the provider
    symbols decoded from JSON, times aware, flags and counts typed."""
    from django.utils import timezone

    from marketdata.services import watchlist_create
    from streaming.selectors import instruments_to_stream

    watchlist_create(owner=user, name="w", symbols=["AAPL"])
    seen = timezone.now()
    Instrument.objects.filter(symbol="AAPL").update(
        provider_symbols={"alpaca": "AAPL", "finnhub": "AAPL.US"}, viewed_at=seen
    )
    (row,) = instruments_to_stream()
    assert row["provider_symbols"] == {"alpaca": "AAPL", "finnhub": "AAPL.US"}
    assert row["viewed_at"] == seen and row["viewed_at"].tzinfo is not None
    assert row["position"] is False and row["holders"] == 1
    assert row["id"] == aapl.id and row["asset_class"] == aapl.asset_class


def crypto_trade(seconds_from, minute, second, price):
    return Trade(
        symbol="BTC/USD",
        ts=seconds_from + timedelta(minutes=minute, seconds=second),
        price=D(price),
        size=D("0.5"),
        provider="simulator",
    )


@pytest.mark.transactional
def test_partly_seen_minutes_are_not_stored_but_reported_as_gaps(
    instruments, make_worker, attach
):
    from streaming.connection import Lifecycle

    btc = instruments["BTC/USD"]
    worker, connection = make_worker(gap_settle=0)
    attach(worker, btc, connection, new=True)
    t0 = NOW.replace(second=0) - timedelta(minutes=10)
    # subscribed mid-minute 0; minutes 1-2 complete; dropped in minute 3;
    # back in minute 5; minute 6 complete
    batches = [
        [crypto_trade(t0, 0, 30, "100")],
        [crypto_trade(t0, 1, 1, "101"), crypto_trade(t0, 1, 59, "102")],
        [crypto_trade(t0, 2, 1, "103"), crypto_trade(t0, 3, 10, "104")],
    ]
    for batch in batches:
        worker.process(connection, NOW.timestamp(), batch)
    worker.process(connection, NOW.timestamp(), [Lifecycle("down", NOW.timestamp())])
    worker.process(connection, NOW.timestamp(), [crypto_trade(t0, 5, 20, "105")])
    worker.process(connection, NOW.timestamp(), [crypto_trade(t0, 6, 1, "106")])
    worker.process(connection, NOW.timestamp(), [crypto_trade(t0, 7, 1, "107")])
    gaps = [(g.start - t0, g.end - t0) for g in worker.pending_gaps]
    minute = timedelta(minutes=1)
    assert gaps == [(0 * minute, 1 * minute), (3 * minute, 6 * minute)]

    async def run():
        worker.loop = asyncio.get_running_loop()
        await worker.step_store_bars()
        await worker.step_gaps()

    asyncio.run(run())
    stored = [b.ts - t0 for b in Bar.objects.filter(instrument=btc).order_by("ts")]
    assert stored == [1 * minute, 2 * minute, 6 * minute, 7 * minute]
    from marketdata.models import Gap

    assert (
        sorted((g.start - t0, g.end - t0) for g in Gap.objects.filter(instrument=btc))
        == gaps
    )
    assert worker.gaps_reported == 2


def test_a_restart_backfills_since_the_last_stored_minute_and_redoes_a_partial_one(
    instruments,
):
    from core.minutes import floor_minute
    from marketdata.services import bars_upsert
    from streaming.services import live_bars_store, partial_bars_take

    aapl = instruments["AAPL"]
    now = datetime.now(UTC)
    minute = floor_minute(now)
    complete, partial = minute - timedelta(minutes=10), minute - timedelta(minutes=5)
    bars_upsert(
        rows=[
            (aapl.id, "1m", complete, D(1), D(2), D("0.5"), D("1.5"), D(10), None, 3)
        ],
        provider="simulator",
        origin="live",
    )
    # what the previous run stored at shutdown: a forming (partial) minute
    live_bars_store(
        rows={
            "simulator": [
                (aapl.id, "1m", partial, D(1), D(1), D(1), D(1), D(1), None, 1)
            ]
        },
        partial={"AAPL": partial.isoformat()},
    )
    row = {
        "id": aapl.id,
        "symbol": "AAPL",
        "asset_class": "equity",
        "provider_symbols": {},
    }
    context = subscription_contexts(rows=[row], now=now.timestamp())["AAPL"]
    assert not Bar.objects.filter(instrument=aapl, ts=partial).exists()
    assert Bar.objects.filter(instrument=aapl, ts=complete).exists()
    assert context["gap_start"] == complete + timedelta(minutes=1)
    assert partial_bars_take(symbols=["AAPL"]) == {}  # consumed


def test_a_restart_gap_runs_on_the_feeds_clock(instruments, make_worker):
    """A feed whose clock runs ahead of the wall (a replay, the simulator's
    fast clock): the worker loads the last stored minute before it has seen
    an event, and the gap reaches from there to the first event's minute.
    Minutes older than the restart window are left to history and the sweep.
    (The chaos suite's killed worker lost three minutes to this.)"""
    from core.minutes import floor_minute
    from marketdata.services import bars_upsert

    aapl = instruments["AAPL"]
    wall = datetime.now(UTC)
    feed = floor_minute(wall) + timedelta(days=1)  # the feed's clock
    stored = feed - timedelta(minutes=3)
    bars_upsert(
        rows=[(aapl.id, "1m", stored, D(1), D(2), D("0.5"), D("1.5"), D(10), None, 3)],
        provider="simulator",
        origin="live",
    )
    worker, _ = make_worker()
    row = {"id": aapl.id, "symbol": "AAPL", "asset_class": "equity", "provider": ""}
    context = subscription_contexts(rows=[row], now=wall.timestamp())["AAPL"]
    worker.gaps.first_event(row, feed + timedelta(seconds=20), context["gap_start"])
    assert [(g.start, g.end) for g in worker.gaps.pending] == [
        (stored + timedelta(minutes=1), feed + timedelta(minutes=1))
    ]

    worker.gaps.pending.clear()
    later = feed + timedelta(seconds=worker.options.restart_backfill_window)
    worker.gaps.first_event(row, later, context["gap_start"])
    assert [(g.start, g.end) for g in worker.gaps.pending] == [
        (floor_minute(later), floor_minute(later) + timedelta(minutes=1))
    ]
