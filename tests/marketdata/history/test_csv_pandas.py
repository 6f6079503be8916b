"""load_history --provider csv with files as people have them: pandas
`to_csv()` output (made by pandas: tests/fixtures/csv/make_pandas.py), yfinance
two-level headers, and `--columns` for names nothing recognizes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from marketdata.models import Bar, LoadJob
from tests.marketdata.providers.conftest import FIXTURES as ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "csv"
PX_MAPPING = (
    "time=TRADE_DT,open=PX_OPEN,high=PX_HIGH,low=PX_LOW,close=PX_LAST,volume=PX_VOLUME"
)

pytestmark = pytest.mark.django_db


def load(path, *extra, symbol="AAPL"):
    call_command(
        "load_history",
        "--provider",
        "csv",
        "--file",
        str(path),
        "--symbol",
        symbol,
        *extra,
    )


def stored(instrument) -> list[Bar]:
    return list(Bar.objects.filter(instrument=instrument).order_by("ts"))


def assert_aapl_january(bars: list[Bar]) -> None:
    """The six AAPL days of the fixtures, as yfinance gave them."""
    assert [b.timeframe for b in bars] == ["1d"] * 6
    # Dates without a zone are New York days, stamped at New York midnight.
    assert bars[0].ts == datetime(2024, 1, 2, 5, 0, tzinfo=UTC)
    assert bars[-1].ts == datetime(2024, 1, 9, 5, 0, tzinfo=UTC)
    first = bars[0]
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("187.149994"),
        Decimal("188.440002"),
        Decimal("183.889999"),
        Decimal("185.639999"),  # Close, not Adj Close
    )
    assert first.volume == Decimal(82488700)
    assert bars[1].close == Decimal("184.25")
    assert bars[-1].volume == Decimal(42841800)


def test_pandas_to_csv_daily_file(instruments, capsys):
    """`df.to_csv()` of a frame with an unnamed DatetimeIndex: the first
    header cell is empty and the first column is the date."""
    path = FIXTURES / "pandas_daily.csv"
    assert path.read_text().startswith(",Open,High,Low,Close,Adj Close,Volume\n")
    load(path)
    assert_aapl_january(stored(instruments["AAPL"]))
    out = capsys.readouterr().out
    assert "6 rows read, 6 bars added, 0 bad rows skipped" in out
    assert LoadJob.objects.get().state == "done"


def test_pandas_after_reset_index_ignores_the_row_numbers(instruments):
    path = FIXTURES / "pandas_reset_index.csv"
    assert path.read_text().startswith(",Date,Open,")
    load(path)
    assert_aapl_january(stored(instruments["AAPL"]))


def test_yfinance_two_level_header(instruments):
    path = FIXTURES / "yfinance_multiindex.csv"
    assert path.read_text().splitlines()[1] == "Ticker,AAPL,AAPL,AAPL,AAPL,AAPL"
    load(path)
    # Volume comes as 82488700.0 here (float columns): the same bars.
    assert_aapl_january(stored(instruments["AAPL"]))


def test_yfinance_bad_row_is_reported_by_its_line(tmp_path, instruments, capsys):
    lines = (FIXTURES / "yfinance_multiindex.csv").read_text().splitlines()
    lines[5] = "2024-01-04,181.91,170.0,180.88,182.15,71983600.0"  # high < low
    path = tmp_path / "aapl.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match="1 bad row"):
        load(path)
    assert "line 6:" in capsys.readouterr().err
    assert Bar.objects.count() == 0


def test_yfinance_several_tickers_are_refused(tmp_path, instruments):
    path = tmp_path / "two.csv"
    path.write_text(
        "Price,Close,Close,High,High,Low,Low,Open,Open\n"
        "Ticker,AAPL,MSFT,AAPL,MSFT,AAPL,MSFT,AAPL,MSFT\n"
        "Date,,,,,,,,\n"
        "2024-01-02,185.64,370.87,188.44,375.9,183.89,366.5,187.15,373.86\n"
    )
    with pytest.raises(CommandError, match="several tickers"):
        load(path)
    assert Bar.objects.count() == 0


def test_pandas_minutes_with_offsets_and_float_noise(instruments):
    """A resampled tick series in New York time: the index carries its
    offset, and values are binary floats printed in full, rounded to the 8
    places storage keeps."""
    path = FIXTURES / "pandas_minutes_ny.csv"
    first_row = path.read_text().splitlines()[1].split(",")
    assert first_row[0] == "2024-01-02 09:30:00-05:00"
    load(path)
    bars = stored(instruments["AAPL"])
    assert len(bars) == 10 and {b.timeframe for b in bars} == {"1m"}
    assert bars[0].ts == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert bars[0].open == Decimal(first_row[1]).quantize(Decimal("1e-8"))
    assert bars[0].close == Decimal(first_row[4]).quantize(Decimal("1e-8"))
    assert bars[0].volume == Decimal(first_row[5])


def test_unknown_header_names_the_missing_columns_and_the_option(instruments):
    with pytest.raises(CommandError) as info:
        load(FIXTURES / "px_fields.csv")
    message = str(info.value)
    assert "cannot find column(s) for time, open, high, low, close" in message
    assert "--columns time=" in message
    assert Bar.objects.count() == 0


def test_columns_mapping(instruments):
    load(FIXTURES / "px_fields.csv", "--columns", PX_MAPPING)
    bars = stored(instruments["AAPL"])
    assert len(bars) == 6 and bars[0].ts == datetime(2024, 1, 2, 5, tzinfo=UTC)
    assert bars[0].close == Decimal("185.639999")
    assert bars[0].volume == Decimal(82488700)
    job = LoadJob.objects.get()
    assert job.options["columns"]["ts"] == "TRADE_DT"


def test_columns_mapping_fills_in_what_the_names_give_away(tmp_path, instruments):
    """Only the unusual column needs naming; date + time name two columns."""
    path = tmp_path / "de.csv"
    path.write_text(
        "Datum;Uhrzeit;Open;High;Low;Close;Volume\n"
        "2024-01-02;09:30;187.15;187.2;187.1;187.18;1200\n"
        "2024-01-02;09:31;187.18;187.3;187.17;187.25;800\n"
    )
    load(path, "--columns", "date=Datum,time=Uhrzeit")
    bars = stored(instruments["AAPL"])
    assert [b.ts for b in bars] == [
        datetime(2024, 1, 2, 14, 30, tzinfo=UTC),
        datetime(2024, 1, 2, 14, 31, tzinfo=UTC),
    ]
    assert bars[1].close == Decimal("187.25") and bars[1].volume == Decimal(800)


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (
            "tme=TRADE_DT,open=PX_OPEN,shut=PX_LAST",
            "unknown target(s) shut, tme; targets are time, date, open",
        ),
        ("time=TRADE_DT,open=PX_OPEN", "cannot find column(s) for high, low, close"),
        (
            PX_MAPPING.replace("PX_LAST", "PX_CLOSE"),
            "mapped column(s) 'PX_CLOSE' (for close) not in the header",
        ),
        ("time:TRADE_DT", "expected target=column, got 'time:TRADE_DT'"),
        ("time=TRADE_DT,time=PX_OPEN", "target(s) given twice: time"),
    ],
)
def test_bad_columns_mapping_is_one_clear_error(instruments, mapping, expected):
    with pytest.raises(CommandError) as info:
        load(FIXTURES / "px_fields.csv", "--columns", mapping)
    assert expected in str(info.value)
    assert Bar.objects.count() == 0 and LoadJob.objects.count() == 0


def test_columns_without_a_file_is_refused(instruments):
    with pytest.raises(CommandError, match="--columns maps the columns of a CSV"):
        call_command("load_history", "--symbols", "AAPL", "--columns", PX_MAPPING)
