"""The gap ledger: reports merge, backfills fetch the missing minutes from the
provider (origin "backfill"), a range the provider has no data for becomes
unrepairable, repairs are idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata.gaps import gap_repair, gap_report, gaps_repair_range
from marketdata.models import Bar, Gap, GapState
from simulator.prices import minute_bars

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 5, 6, 14, 0, tzinfo=UTC)


def test_reports_merge_and_duplicates_are_ignored(
    instruments, django_capture_on_commit_callbacks
):
    aapl = instruments["AAPL"]
    with django_capture_on_commit_callbacks() as callbacks:
        first = gap_report(
            instrument=aapl, start=T0, end=T0 + timedelta(minutes=10), source="stream"
        )
        # Overlapping and touching reports widen the open gap.
        same = gap_report(
            instrument=aapl,
            start=T0 + timedelta(minutes=5),
            end=T0 + timedelta(minutes=20),
            source="stream",
        )
        touching = gap_report(
            instrument=aapl,
            start=T0 + timedelta(minutes=20),
            end=T0 + timedelta(minutes=25, seconds=30),
            source="stream",
        )
    assert first.id == same.id == touching.id
    gap = Gap.objects.get()
    assert (gap.start, gap.end, gap.state) == (
        T0,
        T0 + timedelta(minutes=26),
        GapState.OPEN,
    )
    assert gap.missing_minutes == 26
    assert len(callbacks) == 3  # each report enqueues; repairs are idempotent

    Gap.objects.filter(id=gap.id).update(state=GapState.REPAIRING)
    inside = gap_report(
        instrument=aapl,
        start=T0 + timedelta(minutes=1),
        end=T0 + timedelta(minutes=2),
        source="verifier",
    )
    assert inside.id == gap.id and Gap.objects.count() == 1

    other = gap_report(
        instrument=aapl,
        start=T0 + timedelta(hours=2),
        end=T0 + timedelta(hours=3),
        source="stream",
    )
    assert other.id != gap.id and Gap.objects.count() == 2


def test_bad_range_is_rejected(instruments):
    with pytest.raises(ValueError):
        gap_report(instrument=instruments["AAPL"], start=T0, end=T0, source="stream")


def test_backfill_repairs_from_the_provider(simulator_settings, instruments):
    sim = simulator_settings
    btc = instruments["BTC/USD"]
    start, end = T0, T0 + timedelta(minutes=90)
    gap = gap_report(
        instrument=btc, start=start, end=end, source="stream", repair=False
    )
    repaired = gap_repair(gap_id=gap.id)
    truth = minute_bars("BTC/USD", start, end, seed=sim.seed, hours=sim.hours)
    assert repaired.state == GapState.REPAIRED
    assert repaired.bars_added == len(truth) == 90
    assert repaired.missing_minutes == 0
    stored = list(Bar.objects.filter(instrument=btc).order_by("ts"))
    assert {b.origin for b in stored} == {"backfill"}
    assert [float(b.close) for b in stored] == pytest.approx(list(truth.c))

    # Idempotent: the same range again adds nothing.
    again = gaps_repair_range(instrument=btc, start=start, end=end)
    again = gap_repair(gap_id=again.id)
    assert again.state == GapState.REPAIRED and again.bars_added == 0


def test_no_provider_data_is_unrepairable(simulator_settings, instruments):
    # The simulator (like Alpaca) has no bars for a weekend when trading hours apply.
    simulator_settings.hours = "nyse"
    aapl = instruments["AAPL"]
    saturday = datetime(2024, 5, 4, 15, 0, tzinfo=UTC)
    gap = gap_report(
        instrument=aapl,
        start=saturday,
        end=saturday + timedelta(hours=1),
        source="admin",
        repair=False,
    )
    result = gap_repair(gap_id=gap.id)
    assert result.state == GapState.UNREPAIRABLE
    assert "no bars" in result.error


def test_gap_report_enqueues_backfill_after_commit(
    instruments, django_capture_on_commit_callbacks
):
    """The actor message reaches the Redis broker when the report commits."""
    from core.redis import key, redis_client

    aapl = instruments["AAPL"]
    client = redis_client()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        gap = gap_report(
            instrument=aapl, start=T0, end=T0 + timedelta(minutes=3), source="stream"
        )
    assert client.llen(key("dramatiq", "backfill")) == 0  # nothing before commit
    for callback in callbacks:
        callback()
    (message_id,) = client.lrange(key("dramatiq", "backfill"), 0, -1)
    body = client.hget(key("dramatiq", "backfill") + ".msgs", message_id)
    assert b'"gap_backfill"' in body and f"[{gap.id}]".encode() in body


def test_a_repair_abandoned_long_ago_is_taken_up_again(instruments, settings):
    settings.HISTORY_STALE_SECONDS = 60
    aapl = instruments["AAPL"]
    gap = gap_report(
        instrument=aapl,
        start=T0,
        end=T0 + timedelta(minutes=30),
        source="stream",
        repair=False,
    )
    Gap.objects.filter(id=gap.id).update(state=GapState.REPAIRING)
    # A fresh repair is under way: a report inside it changes nothing.
    same = gap_report(
        instrument=aapl, start=T0, end=T0 + timedelta(minutes=5), source="stream"
    )
    assert same.id == gap.id and Gap.objects.get().state == GapState.REPAIRING
    # Its worker died an hour ago: the next report reopens it.
    from django.utils import timezone

    Gap.objects.filter(id=gap.id).update(updated_at=timezone.now() - timedelta(hours=1))
    again = gap_report(
        instrument=aapl, start=T0, end=T0 + timedelta(minutes=5), source="stream"
    )
    assert again.id == gap.id and Gap.objects.get().state == GapState.OPEN
