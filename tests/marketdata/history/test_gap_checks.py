"""Gap repairs cover the extended session where the provider serves it, run
once the range is over, record what they checked, and a checked range is
not repaired again when its absent minutes are reported again (the sweep
reports them every few minutes: that was an endless repair loop)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from marketdata.gaps import GapRepairRetry, gap_repair, gap_report
from marketdata.models import Gap, GapState
from marketdata.sweep import gaps_sweep
from simulator.prices import minute_bars

pytestmark = pytest.mark.django_db

# Monday 2024-05-06, 08:00-10:30 New York: 90 pre-market + 60 regular minutes.
PRE = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
LATER = datetime(2024, 5, 6, 14, 30, tzinfo=UTC)


def test_missing_minutes_count_the_extended_session_of_the_provider(
    simulator_settings, instruments, settings
):
    aapl = instruments["AAPL"]
    before_open = (PRE, PRE + timedelta(hours=1))  # 08:00-09:00 New York
    gap = gap_report(instrument=aapl, start=before_open[0], end=before_open[1],
                     source="stream", repair=False)  # fmt: skip
    assert gap.missing_minutes == 60  # the simulator, like Alpaca, serves them

    settings.TAPELINE_PROVIDER = "finnhub"  # regular session only
    Gap.objects.all().delete()
    gap = gap_report(instrument=aapl, start=before_open[0], end=before_open[1],
                     source="stream", repair=False)  # fmt: skip
    assert gap.missing_minutes == 0


def test_a_checked_repair_is_not_repaired_again(
    simulator_settings, instruments, django_capture_on_commit_callbacks
):
    """The provider has no pre-market bars (illiquid minutes): the repair
    stores the regular minutes, records the check, and later reports of the
    same hole (the sweep's) change nothing and enqueue nothing."""
    sim = simulator_settings
    sim.set_hours("nyse")  # the provider's history lacks the extended minutes
    aapl = instruments["AAPL"]
    gap = gap_report(instrument=aapl, start=PRE, end=LATER, source="stream",
                     repair=False)  # fmt: skip
    assert gap.missing_minutes == 150
    repaired = gap_repair(gap_id=gap.id)
    truth = minute_bars("AAPL", PRE, LATER, seed=sim.seed, hours="nyse")
    assert (
        repaired.state == GapState.REPAIRED and repaired.bars_added == len(truth) == 60
    )
    assert repaired.missing_minutes == 90 and repaired.checked_at is not None

    with django_capture_on_commit_callbacks() as callbacks:
        again = gap_report(instrument=aapl, start=PRE, end=PRE + timedelta(hours=1),
                           source="sweep")  # fmt: skip
        swept = gaps_sweep(
            instruments=[(aapl.id, "equity", True)], start=PRE, end=LATER
        )
    assert again.id == gap.id and again.state == GapState.REPAIRED
    assert swept == 0 and callbacks == []
    assert Gap.objects.count() == 1 and Gap.objects.get().attempts == 1

    # Minutes past the checked range are still reported (one new gap).
    with django_capture_on_commit_callbacks() as callbacks:
        swept = gaps_sweep(
            instruments=[(aapl.id, "equity", True)],
            start=PRE,
            end=LATER + timedelta(minutes=30),
        )
    assert swept == 1 and len(callbacks) == 1
    assert Gap.objects.filter(start=LATER, state=GapState.OPEN).exists()


def test_a_repair_before_the_range_is_over_is_not_a_check(
    simulator_settings, instruments, django_capture_on_commit_callbacks
):
    """Fetched while its last minutes were not over: when they are reported
    missing again, they are repaired again."""
    btc = instruments["BTC/USD"]
    now = timezone.now().replace(second=0, microsecond=0)
    gap = gap_report(instrument=btc, start=now - timedelta(minutes=10),
                     end=now + timedelta(minutes=2), source="admin", repair=False)  # fmt: skip
    repaired = gap_repair(gap_id=gap.id)
    assert repaired.state == GapState.REPAIRED and repaired.checked_at is None
    with django_capture_on_commit_callbacks() as callbacks:
        again = gap_report(instrument=btc, start=now + timedelta(minutes=1),
                           end=now + timedelta(minutes=2), source="sweep")  # fmt: skip
    assert again.id != gap.id and again.state == GapState.OPEN and len(callbacks) == 1


def test_no_bars_before_the_range_is_over_is_not_final(
    simulator_settings, instruments, django_capture_on_commit_callbacks
):
    """A REST history lagging its stream answers an early repair with no
    bars: the gap is unrepairable for now, and the sweep's next report of
    the same minutes is repaired again (it was ignored for good: the minutes
    were lost)."""
    btc = instruments["BTC/USD"]
    soon = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    gap = gap_report(instrument=btc, start=soon, end=soon + timedelta(minutes=2),
                     source="stream", repair=False)  # fmt: skip
    early = gap_repair(gap_id=gap.id)  # the simulator has no future bars
    assert early.state == GapState.UNREPAIRABLE and early.checked_at is None
    with django_capture_on_commit_callbacks() as callbacks:
        swept = gaps_sweep(instruments=[(btc.id, "crypto", False)], start=soon,
                           end=soon + timedelta(minutes=2))  # fmt: skip
    assert swept == 1 and len(callbacks) == 1
    assert Gap.objects.filter(start=soon, state=GapState.OPEN).exists()


def test_a_duplicate_repair_message_is_a_no_op(instruments):
    btc = instruments["BTC/USD"]
    gap = gap_report(instrument=btc, start=PRE, end=LATER, source="stream",
                     repair=False)  # fmt: skip
    Gap.objects.filter(id=gap.id).update(state=GapState.REPAIRING, attempts=1)

    def never(*args):
        raise AssertionError("a gap under repair was fetched twice")

    again = gap_repair(gap_id=gap.id, provider_factory=never)
    assert again.state == GapState.REPAIRING and again.attempts == 1


def test_a_transient_failure_leaves_the_gap_open_for_a_retry(
    simulator_settings, instruments
):
    from marketdata.providers.base import RateLimitedError
    from tests.marketdata.history.test_history_units import ListProvider

    class Limited(ListProvider):
        def fetch_bars(self, **kwargs):
            raise RateLimitedError("simulator: HTTP 429", retry_after=12)

    gap = gap_report(instrument=instruments["ETH/USD"], start=PRE, end=LATER,
                     source="stream", repair=False)  # fmt: skip
    with pytest.raises(GapRepairRetry) as raised:
        gap_repair(gap_id=gap.id, provider_factory=lambda *a: Limited([]))
    assert raised.value.delay == 12
    gap.refresh_from_db()
    assert gap.state == GapState.OPEN and gap.attempts == 1 and "429" in gap.error
