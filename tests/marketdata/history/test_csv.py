"""load_history --provider csv: daily and intraday files, bad rows by line
(hourly files: test_hourly_files.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Bar, LoadJob
from tests.marketdata.providers.conftest import FIXTURES as ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "csv"

pytestmark = pytest.mark.django_db

DAILY = """Date,Open,High,Low,Close,Adj Close,Volume
2024-03-01,179.55,180.53,177.38,179.66,178.9,73488000
2024-03-04,176.15,176.90,173.79,175.10,174.4,81510100
2024-03-05,170.76,172.04,169.62,170.12,169.4,95132400
"""

INTRADAY = """timestamp,open,high,low,close,volume
2024-03-05T14:30:00Z,64000.12345678,64010.5,63990.00000001,64005.87654321,1.25
2024-03-05T14:31:00Z,64005.87654321,64020,64000,64019.99999999,0.5
2024-03-05T14:32:00Z,64019.99999999,64030,64015,64016,2.00000001
"""

BAD = """Date,Open,High,Low,Close,Volume
2024-03-01,179.55,180.53,177.38,179.66,73488000
2024-03-04,176.15,170.00,173.79,175.10,81510100
2024-03-05,170.76,172.04,169.62,170.12,95132400
not-a-date,1,2,0.5,1.5,10
2024-03-07,170.76,172.04,169.62,170.12,-4
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_daily_file(tmp_path, instruments, capsys):
    path = write(tmp_path, "aapl.csv", DAILY)
    call_command(
        "load_history", "--provider", "csv", "--file", path, "--symbol", "AAPL"
    )
    bars = list(Bar.objects.filter(instrument=instruments["AAPL"]).order_by("ts"))
    assert [b.timeframe for b in bars] == ["1d"] * 3
    # Naive dates are New York days, stamped at New York midnight like Alpaca.
    assert bars[0].ts == datetime(2024, 3, 1, 5, 0, tzinfo=UTC)
    assert bars[0].close == Decimal("179.66") and bars[0].origin == "file"
    assert "3 bars added" in capsys.readouterr().out
    assert LoadJob.objects.get().state == "done"

    call_command(
        "load_history", "--provider", "csv", "--file", path, "--symbol", "AAPL"
    )
    assert Bar.objects.filter(instrument=instruments["AAPL"]).count() == 3
    assert "0 bars added" in capsys.readouterr().out


def test_intraday_file_keeps_eight_decimals(tmp_path, instruments):
    path = write(tmp_path, "btc.csv", INTRADAY)
    call_command(
        "load_history", "--provider", "csv", "--file", path, "--symbol", "BTC/USD"
    )
    bars = list(Bar.objects.filter(instrument=instruments["BTC/USD"]).order_by("ts"))
    assert [b.timeframe for b in bars] == ["1m"] * 3
    assert bars[0].ts == datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    assert bars[0].open == Decimal("64000.12345678")
    assert bars[0].low == Decimal("63990.00000001")
    assert bars[2].volume == Decimal("2.00000001")


def test_bad_rows_reported_by_line_and_nothing_loaded(tmp_path, instruments, capsys):
    path = write(tmp_path, "bad.csv", BAD)
    with pytest.raises(CommandError, match="3 bad row"):
        call_command(
            "load_history", "--provider", "csv", "--file", path, "--symbol", "AAPL"
        )
    err = capsys.readouterr().err
    assert "line 3:" in err and "line 5:" in err and "line 6:" in err
    assert "line 2:" not in err and "line 4:" not in err
    assert Bar.objects.count() == 0


def test_skip_bad_loads_the_good_rows(tmp_path, instruments, capsys):
    path = write(tmp_path, "bad.csv", BAD)
    call_command(
        "load_history",
        "--provider",
        "csv",
        "--file",
        path,
        "--symbol",
        "AAPL",
        "--skip-bad",
    )
    assert Bar.objects.filter(instrument=instruments["AAPL"]).count() == 2
    captured = capsys.readouterr()
    assert "2 bars added, 3 bad rows skipped" in captured.out
    assert "skipped line 3:" in captured.err


def test_five_minute_file_is_refused_clearly(tmp_path, instruments):
    path = str(FIXTURES / "five_minute.csv")
    with pytest.raises(CommandError) as info:
        call_command(
            "load_history", "--provider", "csv", "--file", path, "--symbol", "AAPL"
        )
    message = str(info.value)
    assert "rows are 5 minutes apart" in message
    assert "1-minute, 1-hour and daily files only" in message
    assert Bar.objects.count() == 0


def test_missing_file_and_symbol(tmp_path, instruments):
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "load_history",
            "--provider",
            "csv",
            "--file",
            str(tmp_path / "x.csv"),
            "--symbol",
            "AAPL",
        )
    with pytest.raises(CommandError, match="--symbol"):
        call_command(
            "load_history", "--provider", "csv", "--file", str(tmp_path / "x.csv")
        )
