"""Chunk planning, bar validation, the shared rate limit, command arguments."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from marketdata.events import BarEvent
from marketdata.history import (
    bar_problem,
    chunk_ranges,
    load_chunk_run,
    load_job_plan,
    validate_page,
)
from marketdata.models import Bar, ChunkState, LoadJob
from marketdata.providers.base import Provider
from marketdata.ratelimit import RedisRateLimiter

T0 = datetime(2024, 2, 5, 15, 0, tzinfo=UTC)


def bar(ts=T0, o="10", h="11", lo="9", c="10.5", v="100"):
    return BarEvent(
        symbol="AAPL", ts=ts, open=Decimal(o), high=Decimal(h), low=Decimal(lo),
        close=Decimal(c), volume=Decimal(v), provider="test",
    )  # fmt: skip


def test_chunk_ranges_months_and_years():
    start, end = datetime(2023, 11, 15, tzinfo=UTC), datetime(2024, 2, 10, tzinfo=UTC)
    assert chunk_ranges(timeframe="1m", start=start, end=end) == [
        (start, datetime(2023, 12, 1, tzinfo=UTC)),
        (datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)),
        (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)),
        (datetime(2024, 2, 1, tzinfo=UTC), end),
    ]
    assert chunk_ranges(timeframe="1d", start=start, end=end) == [
        (start, datetime(2024, 1, 1, tzinfo=UTC)),
        (datetime(2024, 1, 1, tzinfo=UTC), end),
    ]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, None),
        ({"h": "10.2"}, "high below open/close"),
        ({"lo": "10.4"}, "low above open/close"),
        ({"v": "-1"}, "negative volume"),
        ({"o": "0"}, "non-positive price"),
        ({"ts": T0 + timedelta(days=1)}, "timestamp outside the request"),
        ({"ts": T0 + timedelta(seconds=5)}, "timestamp not on a minute boundary"),
        ({"h": "1000000000000"}, "price out of range"),
    ],
)
def test_bar_problems(kwargs, problem):
    end = T0 + timedelta(hours=1)
    assert bar_problem(bar(**kwargs), start=T0, end=end) == problem
    # The loader's inlined fast path agrees with the reference rules.
    page = validate_page(
        [bar(**kwargs)], instrument_id=1, timeframe="1m", start=T0, end=end
    )
    assert (len(page.rows), page.invalid) == ((1, 0) if problem is None else (0, 1))
    assert [e["problem"] for e in page.examples] == (
        [] if problem is None else [problem]
    )


class ListProvider(Provider):
    """A provider serving fixed pages (what a misbehaving vendor might send)."""

    name = "listed"

    def __init__(self, pages, **kwargs):
        super().__init__(**kwargs)
        self.pages = pages

    def stream_url(self, *, asset_class, symbols=()):
        return ""

    def auth_messages(self):
        return []

    def subscribe_messages(self, symbols):
        return []

    def unsubscribe_messages(self, symbols):
        return []

    def parse_frame(self, frame, received_at=None):
        return []

    def fetch_bars(
        self, *, symbol, start, end, timeframe="1m"
    ) -> Iterator[list[BarEvent]]:
        yield from self.pages


@pytest.mark.django_db
def test_invalid_bars_are_counted_reported_and_never_stored(instruments):
    aapl = instruments["AAPL"]
    good = [bar(ts=T0 + timedelta(minutes=i)) for i in range(5)]
    bad = [
        bar(ts=T0 + timedelta(minutes=10), h="9.5"),
        bar(ts=T0 + timedelta(minutes=11), v="-3"),
        bar(ts=datetime(2030, 1, 1, tzinfo=UTC)),
    ]
    planned = load_job_plan(
        instruments=[aapl], provider="listed", timeframe="1m",
        start=datetime(2024, 2, 1, tzinfo=UTC), end=datetime(2024, 3, 1, tzinfo=UTC),
    )  # fmt: skip
    (chunk_id,) = planned.to_run
    outcome = load_chunk_run(
        chunk_id=chunk_id,
        provider_factory=lambda name, instrument: ListProvider(
            [good[:3], good[3:] + bad]
        ),
    )
    assert outcome.state == ChunkState.DONE
    assert (outcome.bars_added, outcome.bars_received, outcome.invalid) == (5, 8, 3)
    assert Bar.objects.filter(instrument=aapl).count() == 5
    chunk = planned.job.chunks.get()
    assert [e["problem"] for e in chunk.invalid_examples] == [
        "high below open/close",
        "negative volume",
        "timestamp outside the request",
    ]
    # Done chunks are never run twice.
    assert load_chunk_run(chunk_id=chunk_id).state == ChunkState.DONE


@pytest.mark.django_db
def test_permanent_provider_error_fails_the_chunk_and_the_job(instruments):
    from marketdata.providers.base import UnknownSymbolError

    class Refusing(ListProvider):
        def fetch_bars(self, **kwargs):
            raise UnknownSymbolError("listed: unknown symbol AAPL")

    planned = load_job_plan(
        instruments=[instruments["AAPL"]], provider="listed", timeframe="1m",
        start=datetime(2024, 2, 1, tzinfo=UTC), end=datetime(2024, 3, 1, tzinfo=UTC),
    )  # fmt: skip
    outcome = load_chunk_run(
        chunk_id=planned.to_run[0], provider_factory=lambda n, i: Refusing([])
    )
    assert outcome.state == ChunkState.FAILED and "unknown symbol" in outcome.error
    assert LoadJob.objects.get().state == "failed"
    # Running the same request again resumes the failed job and retries the chunk.
    again = load_job_plan(
        instruments=[instruments["AAPL"]], provider="listed", timeframe="1m",
        start=datetime(2024, 2, 1, tzinfo=UTC), end=datetime(2024, 3, 1, tzinfo=UTC),
    )  # fmt: skip
    assert again.resumed and again.job.id == planned.job.id
    assert again.to_run == planned.to_run


def test_rate_limit_is_shared_between_workers():
    sleeps = []
    first = RedisRateLimiter(
        provider="sharedtest", per_minute=60, burst=2, sleep=sleeps.append
    )
    second = RedisRateLimiter(
        provider="sharedtest", per_minute=60, burst=2, sleep=sleeps.append
    )
    assert first.try_acquire() == 0
    assert first.try_acquire() == 0
    wait = second.try_acquire()  # another process: the shared budget is spent
    assert 0.5 < wait <= 1.0
    other = RedisRateLimiter(provider="otherprovider", per_minute=60, burst=1)
    assert other.try_acquire() == 0  # budgets are per provider


@pytest.mark.django_db
def test_command_argument_errors(instruments):
    with pytest.raises(CommandError, match="Unknown instrument"):
        call_command("load_history", "--symbols", "NOPE", "--sync")
    with pytest.raises(CommandError, match="--year or --start"):
        call_command(
            "load_history",
            "--symbols",
            "AAPL",
            "--year",
            "2024",
            "--start",
            "2024-01-01",
        )
    with pytest.raises(CommandError, match="Not a date"):
        call_command("load_history", "--symbols", "AAPL", "--start", "2024-31-01")
    with pytest.raises(CommandError, match="No instrument is in any watchlist"):
        call_command("load_history", "--sync")


@pytest.mark.django_db
def test_check_only_downloads_nothing(instruments, store_minutes, capsys, settings):
    from marketdata.calendar import expected_minutes

    settings.TAPELINE_PROVIDER = "simulator"  # serves pre- and post-market minutes
    aapl = instruments["AAPL"]
    jan, feb, mar = (datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    store_minutes(aapl, list(expected_minutes("equity", jan, feb, extended=True)))
    # February holds its regular sessions only: the provider's pre- and
    # post-market minutes are missing, so it is not covered.
    store_minutes(aapl, list(expected_minutes("equity", feb, mar)), seed=8)
    call_command("load_history", "--symbols", "AAPL", "--year", "2024", "--check-only")
    out = capsys.readouterr().out
    assert "AAPL" in out and "1/12" in out  # January fully covered
    assert LoadJob.objects.count() == 0
