"""`load_history --provider csv` with files holding values storage cannot
keep, other encodings and absurd rows: a clear error naming the line and
nothing written, or (--skip-bad) the good rows and the bad lines listed;
never a database traceback."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Bar, LoadJob

pytestmark = pytest.mark.django_db

HEADER = "timestamp,open,high,low,close,volume,vwap\n"
ROWS = [
    "2024-03-05T14:30:00Z,100,101,99,100.5,10,100.2",
    "2024-03-05T14:31:00Z,100.5,101,99,100.25,10,100.2",
    "2024-03-05T14:32:00Z,0.000000001,101,0.000000001,100,10,50",  # line 4
    "2024-03-05T14:33:00Z,100,101,99,100.5,10,-100.2",  # line 5
    "2024-03-05T14:34:00Z,100,101,99,100.5,1e25,100.2",  # line 6
    "2999-03-05T14:35:00Z,100,101,99,100.5,10,100.2",  # line 7
    "1900-03-05T14:36:00Z,100,101,99,100.5,10,100.2",  # line 8
    "2024-03-05T14:37:00Z,100,101,99,100.5,10,100.2",
]


def load(path, *extra: str) -> None:
    call_command(
        "load_history", "--provider", "csv", "--file", str(path),
        "--symbol", "BTC/USD", "--timezone", "UTC", *extra,
    )  # fmt: skip


@pytest.fixture
def hostile(tmp_path):
    path = tmp_path / "hostile.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n")
    return path


def test_without_skip_bad_nothing_is_written_and_every_line_named(
    hostile, instruments, capsys, caplog
):
    caplog.set_level(logging.ERROR)
    with pytest.raises(CommandError) as info:
        load(hostile)
    assert "5 bad row(s), nothing loaded" in str(info.value)
    err = capsys.readouterr().err
    assert "line 4: open 0.000000001 has more than 8 decimal places" in err
    assert "line 5: negative vwap" in err.lower()
    assert "line 6: volume 1e25 is out of range" in err
    assert "line 7:" in err and "after tomorrow" in err
    assert "line 8:" in err and "before 1970" in err
    assert Bar.objects.count() == 0 and not LoadJob.objects.exists()
    assert not caplog.records  # no traceback logged anywhere


def test_skip_bad_loads_the_good_rows_and_lists_the_bad_lines(
    hostile, instruments, capsys, caplog
):
    caplog.set_level(logging.ERROR)
    load(hostile, "--skip-bad")
    bars = list(Bar.objects.filter(instrument=instruments["BTC/USD"]).order_by("ts"))
    assert [b.ts.minute for b in bars] == [30, 31, 37]
    assert all(b.low > 0 and b.vwap > 0 for b in bars)  # nothing rounded to 0
    captured = capsys.readouterr()
    assert "3 bars added, 5 bad rows skipped" in captured.out
    for line in (4, 5, 6, 7, 8):
        assert f"skipped line {line}:" in captured.err
    assert LoadJob.objects.get().state == "done"
    assert not caplog.records


def test_encoding_option_and_utf16_detection(tmp_path, instruments, capsys):
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        (HEADER + ROWS[0] + "\n" + ROWS[1] + "\n# Zürich\n").encode("latin-1")
    )
    with pytest.raises(CommandError, match=r"line 4 is not valid UTF-8.*--encoding"):
        load(latin)
    assert Bar.objects.count() == 0
    with pytest.raises(CommandError, match="expected 7 fields, found 1"):
        load(latin, "--encoding", "latin-1")  # read now; the comment is a bad row
    load(latin, "--encoding", "latin-1", "--skip-bad")
    assert Bar.objects.count() == 2
    capsys.readouterr()
    with pytest.raises(CommandError, match="unknown encoding 'nope'"):
        load(latin, "--encoding", "nope")
    wide = tmp_path / "wide.csv"
    wide.write_bytes((HEADER + "\r\n".join(ROWS[:2]) + "\r\n").encode("utf-16"))
    load(wide)
    assert "2 rows read, 0 bars added" in capsys.readouterr().out  # same two bars


def test_oversize_field_is_named_not_a_traceback(tmp_path, instruments):
    path = tmp_path / "huge.csv"
    path.write_text(HEADER + ROWS[0] + "\n" + ROWS[1][:21] + "9" * 200_000 + "\n")
    with pytest.raises(CommandError, match="line 3: a field is longer than 131072"):
        load(path)
    assert Bar.objects.count() == 0


def test_precision_is_kept_never_rounded(tmp_path, instruments):
    path = tmp_path / "fine.csv"
    path.write_text(HEADER + "2024-03-05T14:30:00Z,0.00000001,0.00000003,"
                    "0.00000001,0.00000002,0.00000001,0.00000002\n")  # fmt: skip
    load(path)
    bar = Bar.objects.get()
    assert (bar.open, bar.high, bar.vwap) == (
        Decimal("0.00000001"),
        Decimal("0.00000003"),
        Decimal("0.00000002"),
    )
