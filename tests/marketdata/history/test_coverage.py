"""Coverage by minutes (issue 10, defect 1): a chunk is covered when its own
record says it was fetched completely, or when every minute the calendar
expects (the extended session where the provider serves it, 24/7 for crypto)
is stored: the set, never a count. A partial month is never "covered"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from marketdata import calendar
from marketdata.history import load_job_plan, range_covered
from marketdata.models import Bar, ChunkState, LoadJob
from simulator.prices import minute_bars

pytestmark = pytest.mark.django_db

OCT, NOV = datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC)


def utc(epoch) -> datetime:
    return datetime.fromtimestamp(int(epoch), tz=UTC)


def stored_minutes(instrument, start, end) -> set[datetime]:
    return set(
        Bar.objects.filter(
            instrument=instrument, timeframe="1m", ts__gte=start, ts__lt=end
        ).values_list("ts", flat=True)
    )


def test_a_month_with_ten_days_missing_is_fetched_although_its_count_is_large(
    simulator_settings, instruments, store_minutes
):
    """Extended-hours minutes with a 10-day hole outnumber the regular
    session's minutes: counting called the month covered, and a re-run
    skipped it."""
    sim = simulator_settings
    sim.set_hours("extended")
    msft = instruments["MSFT"]
    truth = [
        utc(t)
        for t in minute_bars("MSFT", OCT, NOV, seed=sim.seed, hours="extended").ts
    ]
    assert set(truth) == set(
        calendar.expected_minutes("equity", OCT, NOV, extended=True)
    )
    hole = (datetime(2025, 10, 10, tzinfo=UTC), datetime(2025, 10, 20, tzinfo=UTC))
    kept = [ts for ts in truth if not hole[0] <= ts < hole[1]]
    store_minutes(msft, kept)
    assert len(kept) > calendar.expected_minute_count("equity", OCT, NOV)

    assert not range_covered(instrument=msft, timeframe="1m", start=OCT, end=NOV)
    call_command(
        "load_history", "--symbols", "MSFT", "--start", "2025-10-01",
        "--end", "2025-11-01", "--sync",
    )  # fmt: skip
    (chunk,) = LoadJob.objects.get().chunks.all()
    assert chunk.state == ChunkState.DONE  # fetched, not "already covered"
    assert stored_minutes(msft, OCT, NOV) == set(truth)
    assert chunk.bars_added == len(truth) - len(kept)
    assert range_covered(instrument=msft, timeframe="1m", start=OCT, end=NOV)


def test_a_csv_of_nine_days_does_not_cover_the_month(
    simulator_settings, instruments, tmp_path
):
    """A 24-hour CSV of October 1-9 holds more minutes than October's
    regular sessions; loading the month from the provider must still store
    all of it."""
    sim = simulator_settings
    sim.set_hours("extended")
    msft = instruments["MSFT"]
    path = tmp_path / "msft.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    ts = OCT
    while ts < datetime(2025, 10, 10, tzinfo=UTC):
        lines.append(f"{ts:%Y-%m-%dT%H:%M:%SZ},400.00,401.00,399.00,400.50,1000")
        ts += timedelta(minutes=1)
    path.write_text("\n".join(lines) + "\n")
    call_command(
        "load_history", "--provider", "csv", "--file", str(path), "--symbol", "MSFT"
    )
    assert (
        len(lines) - 1 == 9 * 1440 > calendar.expected_minute_count("equity", OCT, NOV)
    )

    call_command(
        "load_history", "--symbols", "MSFT", "--start", "2025-10-01",
        "--end", "2025-11-01", "--sync",
    )  # fmt: skip
    truth = {
        utc(t)
        for t in minute_bars("MSFT", OCT, NOV, seed=sim.seed, hours="extended").ts
    }
    stored = stored_minutes(msft, OCT, NOV)
    assert truth <= stored  # every minute the provider has for October
    assert (
        stored - truth
        == {  # plus the file's night minutes, kept as they were
            datetime.fromisoformat(line.split(",")[0]) for line in lines[1:]
        }
        - truth
    )
    job = LoadJob.objects.get(provider="simulator")
    assert job.state == "done" and job.chunks.get().state == ChunkState.DONE


def test_a_partial_month_is_never_covered(instruments, store_minutes):
    btc = instruments["BTC/USD"]
    # Every minute of October 1-14: complete for that range, not for October.
    half = datetime(2025, 10, 15, tzinfo=UTC)
    store_minutes(btc, list(calendar.expected_minutes("crypto", OCT, half)))
    assert range_covered(instrument=btc, timeframe="1m", start=OCT, end=half)
    assert not range_covered(instrument=btc, timeframe="1m", start=OCT, end=NOV)

    # A chunk of an earlier job that fetched up to the 15th covers only that.
    planned = load_job_plan(
        instruments=[btc], provider="simulator", timeframe="1m", start=OCT, end=half
    )
    planned.job.chunks.update(state=ChunkState.DONE, covered_until=half)
    assert not range_covered(
        instrument=btc, timeframe="1m", start=OCT, end=NOV, provider="simulator"
    )
    assert range_covered(
        instrument=btc, timeframe="1m", start=OCT, end=half, provider="simulator"
    )


def test_minutes_outside_the_expected_ones_do_not_count(instruments, store_minutes):
    """Weekend and night minutes (a 24-hour file) fill no session minute."""
    aapl = instruments["AAPL"]
    week = (datetime(2025, 10, 6, tzinfo=UTC), datetime(2025, 10, 13, tzinfo=UTC))
    regular = list(calendar.expected_minutes("equity", *week))
    everything = [week[0] + timedelta(minutes=i) for i in range(7 * 1440)]
    store_minutes(aapl, [ts for ts in everything if ts != regular[100]])
    for provider in ("listed", "simulator"):  # regular-session and extended
        assert not range_covered(
            instrument=aapl,
            timeframe="1m",
            start=week[0],
            end=week[1],
            provider=provider,
        )
    Bar.objects.filter(instrument=aapl).delete()
    store_minutes(aapl, regular)
    assert range_covered(
        instrument=aapl, timeframe="1m", start=week[0], end=week[1], provider="listed"
    )
    assert not range_covered(
        instrument=aapl,
        timeframe="1m",
        start=week[0],
        end=week[1],
        provider="simulator",
    )


def test_days_are_covered_by_the_set_of_session_days(instruments):
    from marketdata.services import bars_upsert

    spy = instruments["SPY"]
    year = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    days = [
        s.day
        for s in calendar.sessions(
            "equity", year[0].date(), datetime(2024, 12, 31).date()
        )
    ]

    def daily(day, offset=0):
        ts = datetime.combine(day, datetime.min.time(), calendar.NEW_YORK).astimezone(
            UTC
        )
        ts += timedelta(hours=offset)
        return (spy.id, "1d", ts, 1, 1, 1, 1, 1, None, None)

    # Every session day but one, plus as many weekend days: the count matches.
    saturdays = [d + timedelta(days=5 - d.weekday()) for d in days[:1]]
    bars_upsert(rows=[daily(d) for d in days[1:] + saturdays], provider="test")
    assert not range_covered(instrument=spy, timeframe="1d", start=year[0], end=year[1])
    bars_upsert(rows=[daily(days[0])], provider="test")
    assert range_covered(instrument=spy, timeframe="1d", start=year[0], end=year[1])
