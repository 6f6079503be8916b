"""The verifier finds planted gaps and OHLC violations, and nothing on clean data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from marketdata.calendar import expected_minutes
from marketdata.models import Bar, Gap, GapState
from marketdata.verify import verify_instrument

pytestmark = pytest.mark.django_db

START = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday
END = datetime(2024, 6, 15, tzinfo=UTC)


@pytest.fixture
def regular_hours(settings):
    """MSFT's history from a provider without pre- and post-market (Finnhub):
    only the regular session is expected."""
    settings.TAPELINE_PROVIDERS = ["finnhub"]
    settings.TAPELINE_PROVIDER = "finnhub"


@pytest.fixture
def clean_msft(regular_hours, instruments, store_minutes):
    msft = instruments["MSFT"]
    minutes = list(expected_minutes("equity", START, END))
    store_minutes(msft, minutes)
    return msft, minutes


def test_clean_data_reports_nothing(clean_msft):
    msft, minutes = clean_msft
    report = verify_instrument(instrument=msft, start=START, end=END)
    assert report.clean
    assert (
        report.bars == len(minutes) == report.expected_minutes == report.session_minutes
    )
    assert report.coverage == 100.0
    assert report.trading_days == 10  # June 3-14, 2024: two full weeks
    assert report.gaps == [] and report.violations == 0 and report.duplicates == 0


def test_planted_gaps_are_found_with_their_size(clean_msft):
    msft, minutes = clean_msft
    # 45 minutes on June 5th and the whole session of June 12th.
    hole = [
        m
        for m in minutes
        if datetime(2024, 6, 5, 15, 0, tzinfo=UTC)
        <= m
        < datetime(2024, 6, 5, 15, 45, tzinfo=UTC)
    ]
    day = [m for m in minutes if m.date() == datetime(2024, 6, 12).date()]
    Bar.objects.filter(instrument=msft, ts__in=hole + day).delete()
    report = verify_instrument(instrument=msft, start=START, end=END)
    assert not report.clean
    assert report.gap_count == 2
    assert [(g.start, g.missing) for g in report.gaps] == [
        (day[0] - timedelta(hours=17, minutes=30), 390),  # from the 11th's close on
        (hole[0], 45),
    ]
    assert report.gaps[1].end == hole[-1] + timedelta(minutes=1)
    assert report.missing_minutes == 435
    assert report.coverage == pytest.approx(100.0 * (len(minutes) - 435) / len(minutes))


def test_gap_at_the_edges_of_the_range(clean_msft):
    msft, minutes = clean_msft
    report = verify_instrument(
        instrument=msft, start=START - timedelta(days=3), end=END + timedelta(days=3)
    )
    # Friday May 31 before the data and Monday June 17 after it.
    assert sorted((g.start.date().isoformat(), g.missing) for g in report.gaps) == [
        ("2024-05-31", 390),
        ("2024-06-14", 390),  # from the 14th's close to the 17th's close
    ]


def test_planted_ohlc_violations_are_reported_with_examples(clean_msft):
    msft, minutes = clean_msft
    bad = minutes[100]
    Bar.objects.filter(instrument=msft, ts=bad).update(high=Decimal("1"))
    Bar.objects.filter(instrument=msft, ts=minutes[200]).update(volume=Decimal("-5"))
    report = verify_instrument(instrument=msft, start=START, end=END)
    assert report.violations == 2
    assert report.violation_examples[0]["ts"] == bad.isoformat()
    assert report.violation_examples[0]["high"] == "1.00000000"


def test_verify_data_command_json_and_gap_recording(clean_msft, capsys):
    msft, minutes = clean_msft
    call_command(
        "verify_data",
        "--symbols",
        "MSFT",
        "--start",
        "2024-06-03",
        "--end",
        "2024-06-15",
        "--json",
    )
    data = json.loads(capsys.readouterr().out)
    assert data["instruments"][0]["clean"] is True

    Bar.objects.filter(instrument=msft, ts__in=minutes[10:40]).delete()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "verify_data", "--symbols", "MSFT", "--start", "2024-06-03",
            "--end", "2024-06-15", "--record-gaps", "--min-gap", "5",
        )  # fmt: skip
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "MSFT" in out and "30 min" in out
    gap = Gap.objects.get(instrument=msft)
    assert (gap.start, gap.end, gap.state, gap.source) == (
        minutes[10],
        minutes[40],
        GapState.OPEN,
        "verifier",
    )
    assert gap.missing_minutes == 30


def test_extended_hours_provider_expects_pre_and_post_market(
    instruments, store_minutes
):
    """With a history provider that serves 04:00-20:00 New York (the
    simulator, as Alpaca), a week of regular sessions only is not complete,
    and the pre- and post-market minutes of a full extended week are expected
    ones, not "outside" ones."""
    msft = instruments["MSFT"]
    week = (START, START + timedelta(days=5))
    store_minutes(msft, list(expected_minutes("equity", *week)))
    report = verify_instrument(instrument=msft, start=week[0], end=week[1])
    assert report.extended and not report.clean
    assert report.expected_minutes == 5 * 960
    assert report.session_minutes == 5 * 390 and report.outside_session == 0
    assert report.missing_minutes == 5 * 570
    store_minutes(msft, list(expected_minutes("equity", *week, extended=True)))
    report = verify_instrument(instrument=msft, start=week[0], end=week[1])
    assert report.clean and report.coverage == 100.0
    assert report.bars == report.session_minutes == 5 * 960
