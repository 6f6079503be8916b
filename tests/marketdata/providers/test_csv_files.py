from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.models import Timeframe
from marketdata.providers.base import InvalidRequestError
from marketdata.providers.csv_files import CsvFormatError, CsvProvider, read_csv_bars
from marketdata.rollups import STEPS
from tests.marketdata.providers.conftest import FIXTURES

CSV = FIXTURES / "csv"
ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def test_yahoo_daily_midnight_new_york_and_raw_close():
    bars, summary = read_csv_bars(CSV / "yahoo_daily.csv", symbol="AAPL")
    assert summary.layout == "yahoo" and summary.timeframe == "1d"
    assert summary.rows == summary.good_rows == 5 and not summary.bad_rows
    assert bars[0].ts == datetime(2024, 1, 2, 5, tzinfo=UTC)  # midnight EST
    assert bars[0].close == Decimal("185.639999")  # Close, not Adj Close
    assert bars[0].volume == Decimal(82488700) and bars[0].timeframe == "1d"
    assert bars[0].provider == "csv" and bars[0].symbol == "AAPL"


def test_stooq_daily_and_ticker_export():
    bars, summary = read_csv_bars(CSV / "stooq_daily.csv", symbol="AAPL")
    assert summary.layout == "stooq" and summary.timeframe == "1d" and len(bars) == 3
    # 2024-03-11 is after the US DST change: midnight New York is 04:00Z
    assert bars[1].ts == datetime(2024, 3, 11, 4, tzinfo=UTC)
    tbars, tsummary = read_csv_bars(CSV / "stooq_ticker.txt", symbol="AAPL")
    assert tsummary.layout == "stooq-ticker" and tsummary.tickers == ("AAPL.US",)
    assert tsummary.timeframe == "1d"
    assert [(b.ts, b.close, b.volume) for b in tbars] == [
        (b.ts, b.close, b.volume) for b in bars
    ]


def test_generic_intraday_with_vwap_and_trades():
    bars, summary = read_csv_bars(CSV / "generic_intraday.csv", symbol="AAPL")
    assert summary.layout == "generic" and summary.timeframe == "1m"
    assert summary.interval_seconds == 60
    assert bars[0].ts == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert bars[3].ts == datetime(2024, 1, 2, 14, 34, tzinfo=UTC)  # gaps are fine
    assert bars[0].vwap == Decimal("187.12") and bars[0].trade_count == 1402


def test_naive_times_use_timezone_option_any_column_order_semicolons():
    bars, summary = read_csv_bars(CSV / "generic_naive_semicolon.csv", symbol="BTC/USD")
    assert bars[0].ts == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # New York default
    assert bars[0].open == Decimal("42000.00000001")
    bars, _ = read_csv_bars(
        CSV / "generic_naive_semicolon.csv", symbol="BTC/USD", timezone="UTC"
    )
    assert bars[0].ts == datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
    assert summary.timeframe == "1m"


def test_epoch_milliseconds():
    bars, summary = read_csv_bars(CSV / "epoch_ms.csv", symbol="EUR/USD")
    assert bars[0].ts == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert summary.timeframe == "1m" and bars[2].close == Decimal("1.0849")


def test_explicit_column_mapping():
    columns = {
        "ts": "Datum",
        "open": "Eroeffnung",
        "high": "Hoch",
        "low": "Tief",
        "close": "Schluss",
        "volume": "Umsatz",
    }
    bars, summary = read_csv_bars(
        CSV / "mapped.csv", symbol="SAP", columns=columns, timezone="Europe/Berlin"
    )
    assert summary.layout == "mapped" and len(bars) == 2
    assert bars[0].ts == datetime(2024, 1, 2, 8, 30, tzinfo=UTC)
    with pytest.raises(CsvFormatError, match="Kurs"):
        read_csv_bars(
            CSV / "mapped.csv", symbol="SAP", columns={**columns, "close": "Kurs"}
        )
    with pytest.raises(
        CsvFormatError,
        match="name them with a column mapping, e.g. load_history --columns",
    ):
        read_csv_bars(CSV / "mapped.csv", symbol="SAP")


def test_bad_rows_reported_with_every_line_number_and_nothing_loaded():
    with pytest.raises(CsvFormatError) as info:
        read_csv_bars(CSV / "bad_rows.csv", symbol="AAPL")
    error = info.value
    assert [b.line for b in error.bad_rows] == [3, 5, 6, 7, 8]
    reasons = {b.line: b.reason for b in error.bad_rows}
    assert "bad open 'null'" in reasons[3]
    assert "bad timestamp '2024-13-05'" in reasons[5]
    assert "expected 7 fields, found 3" in reasons[6]
    assert "high 185.15 / low 186.1" in reasons[7]
    assert "duplicate timestamp (first on line 4)" in reasons[8]
    for line in (3, 5, 6, 7, 8):
        assert f"line {line}:" in str(error)
    assert error.permanent


def test_skip_bad_loads_good_rows_and_summarises_bad():
    bars, summary = read_csv_bars(CSV / "bad_rows.csv", symbol="AAPL", skip_bad=True)
    assert [b.ts.date().isoformat() for b in bars] == [
        "2024-01-02",
        "2024-01-04",
        "2024-01-10",
    ]
    assert summary.rows == 8 and summary.good_rows == 3
    assert [b.line for b in summary.bad_rows] == [3, 5, 6, 7, 8]
    assert "5 bad: line 3:" in summary.describe()


def test_hourly_file_loads_as_hourly_bars():
    bars, summary = read_csv_bars(CSV / "hourly.csv", symbol="AAPL")
    assert summary.timeframe == "1h" and summary.interval_seconds == 3600
    assert [b.timeframe for b in bars] == ["1h"] * 3
    # naive New York 09:00 (EST) is 14:00Z
    assert bars[0].ts == datetime(2024, 1, 2, 14, tzinfo=UTC)


def test_tradingview_hourly_export_keeps_half_hour_stamps():
    bars, summary = read_csv_bars(CSV / "tradingview_hourly.csv", symbol="AAPL")
    assert summary.layout == "generic" and summary.timeframe == "1h"
    assert summary.rows == summary.good_rows == 21 and not summary.bad_rows
    # Epoch seconds are absolute; bar starts stay at :30 (09:30 EST = 14:30Z)
    assert bars[0].ts == datetime(2024, 3, 7, 14, 30, tzinfo=UTC)
    assert bars[6].ts == datetime(2024, 3, 7, 20, 30, tzinfo=UTC)  # 15:30 EST
    # 2024-03-11 is after the DST change: 09:30 EDT = 13:30Z
    assert bars[14].ts == datetime(2024, 3, 11, 13, 30, tzinfo=UTC)
    assert bars[0].open == Decimal("169.15") and bars[0].volume == 5906155
    assert all(b.ts.minute == 30 for b in bars)


def test_stooq_hourly_export_per_60():
    bars, summary = read_csv_bars(CSV / "stooq_hourly.txt", symbol="MSFT")
    assert summary.layout == "stooq-ticker" and summary.tickers == ("MSFT.US",)
    assert summary.timeframe == "1h" and len(bars) == 14
    # <DATE> 20240307 <TIME> 093000, New York by default
    assert bars[0].ts == datetime(2024, 3, 7, 14, 30, tzinfo=UTC)
    assert bars[0].close == Decimal("409.86") and bars[0].volume == 3196218
    utc_bars, _ = read_csv_bars(CSV / "stooq_hourly.txt", symbol="MSFT", timezone="UTC")
    assert utc_bars[0].ts == datetime(2024, 3, 7, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("minutes", "spacing"), [(5, "5 minutes"), (240, "4 hours"), (30, "30 minutes")]
)
def test_other_intervals_are_refused_naming_the_spacing(tmp_path, minutes, spacing):
    lines = ["datetime,open,high,low,close,volume"]
    for i in range(6):
        ts = datetime(2024, 3, 7, 9, 30, tzinfo=UTC).timestamp() + i * minutes * 60
        lines.append(f"{int(ts)},1.5,2,1,1.75,10")
    path = tmp_path / "odd.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CsvFormatError) as info:
        read_csv_bars(path, symbol="AAPL")
    message = str(info.value)
    assert f"rows are {spacing} apart" in message
    assert "1-minute, 1-hour and daily files only" in message
    assert info.value.interval_seconds == minutes * 60


def _spaced_file(tmp_path, seconds: int):
    start = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp())
    lines = ["datetime,open,high,low,close,volume"]
    lines += [f"{start + i * seconds},1.5,2,1,1.75,10" for i in range(6)]
    path = tmp_path / "spaced.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("timeframe", Timeframe.values)
def test_a_file_of_each_stored_timeframe_loads_as_it(tmp_path, timeframe):
    path = _spaced_file(tmp_path, int(STEPS[timeframe].total_seconds()))
    bars, summary = read_csv_bars(path, symbol="AAPL")
    assert summary.timeframe == timeframe and len(bars) == 6


@pytest.mark.parametrize("timeframe", sorted(set(STEPS) - set(Timeframe.values)))
def test_chart_only_timeframes_are_refused(tmp_path, timeframe):
    """5m and 15m are resampled from minutes, never stored from a file."""
    path = _spaced_file(tmp_path, int(STEPS[timeframe].total_seconds()))
    with pytest.raises(CsvFormatError, match="apart"):
        read_csv_bars(path, symbol="AAPL")
    with pytest.raises(InvalidRequestError, match=f"timeframe '{timeframe}'"):
        CsvProvider(path=path, timeframe=timeframe)


def test_five_minute_fixture_is_refused():
    with pytest.raises(CsvFormatError, match="5 minutes apart") as info:
        read_csv_bars(CSV / "five_minute.csv", symbol="AAPL")
    assert info.value.interval_seconds == 300


def test_requested_timeframe_must_match_the_file():
    bars, summary = read_csv_bars(CSV / "hourly.csv", symbol="AAPL", timeframe="1h")
    assert summary.timeframe == "1h" and len(bars) == 3
    with pytest.raises(CsvFormatError, match="holds 1h bars, not 1m as requested"):
        read_csv_bars(CSV / "hourly.csv", symbol="AAPL", timeframe="1m")
    with pytest.raises(InvalidRequestError, match="timeframe '5m'"):
        CsvProvider(path=CSV / "hourly.csv", timeframe="5m")


def test_single_timed_row_follows_the_requested_timeframe(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("timestamp,open,high,low,close\n2024-03-07T14:30:00Z,1,2,1,1.5\n")
    _, summary = read_csv_bars(path, symbol="AAPL")
    assert summary.timeframe == "1m"  # nothing to measure: minutes by default
    bars, summary = read_csv_bars(path, symbol="AAPL", timeframe="1h")
    assert summary.timeframe == "1h" and bars[0].timeframe == "1h"


def test_overlapping_hourly_rows_are_bad_rows(tmp_path):
    path = tmp_path / "overlap.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-03-07T14:30:00Z,1,2,1,1.5,10\n"
        "2024-03-07T15:30:00Z,1,2,1,1.5,10\n"
        "2024-03-07T16:00:00Z,1,2,1,1.5,10\n"
        "2024-03-07T17:00:00Z,1,2,1,1.5,10\n"
        "2024-03-07T18:00:00Z,1,2,1,1.5,10\n"
    )
    with pytest.raises(CsvFormatError, match="line 4: only 30 minutes after line 3"):
        read_csv_bars(path, symbol="AAPL")
    bars, summary = read_csv_bars(path, symbol="AAPL", skip_bad=True)
    assert summary.timeframe == "1h" and summary.good_rows == 4
    assert [b.ts.hour for b in bars] == [14, 15, 17, 18]


def test_fetch_bars_pages_range_and_timeframe(tmp_path):
    lines = ["time,open,high,low,close,volume"]
    for i in range(12_000):
        lines.append(f"{1704205800 + 60 * i},1.5,2,1,1.75,{i}")
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    provider = CsvProvider(path=path)
    pages = list(provider.fetch_bars(symbol="X", start=ALL_TIME[0], end=ALL_TIME[1]))
    assert [len(p) for p in pages] == [5000, 5000, 2000]
    start = datetime(2024, 1, 2, 14, 40, tzinfo=UTC)
    (page,) = provider.fetch_bars(symbol="X", start=start, end=start.replace(minute=50))
    assert len(page) == 10 and page[0].volume == 10
    with pytest.raises(InvalidRequestError, match="holds 1m bars, not 1d"):
        list(
            provider.fetch_bars(
                symbol="X", start=ALL_TIME[0], end=ALL_TIME[1], timeframe="1d"
            )
        )


def test_off_minute_rows_and_missing_file(tmp_path):
    path = tmp_path / "seconds.csv"
    path.write_text(
        "time,open,high,low,close\n"
        "2024-01-02 09:30:00,1,1,1,1\n2024-01-02 09:31:00,1,1,1,1\n"
        "2024-01-02 09:31:30,1,1,1,1\n2024-01-02 09:33:00,1,1,1,1\n"
    )
    with pytest.raises(CsvFormatError) as info:
        read_csv_bars(path, symbol="X")
    assert [(b.line, b.reason) for b in info.value.bad_rows] == [
        (4, "timestamp is not on a minute boundary")
    ]
    with pytest.raises(InvalidRequestError, match="cannot read"):
        read_csv_bars(tmp_path / "missing.csv", symbol="X")
    with pytest.raises(InvalidRequestError, match="unknown timezone"):
        CsvProvider(path=path, timezone="Mars/Olympus")


def test_csv_is_history_only():
    provider = CsvProvider(path=CSV / "yahoo_daily.csv")
    (event,) = provider.parse_frame("anything")
    assert event.type.value == "malformed"


_cells = st.sampled_from(
    ["", "null", "1", "1.5", "-2", "abc", "2024-01-02", "2024-01-02 09:30",
     "1704205800", "1704205800000", "20240102", "1e400", "NaN", " 3 ", '"q,1"']
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(_cells, min_size=0, max_size=8), max_size=12),
    header=st.sampled_from(
        [
            "Date,Open,High,Low,Close,Adj Close,Volume",
            "time,open,high,low,close,volume",
            "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>",
            "a,b,c",
        ]
    ),
    skip_bad=st.booleans(),
)
def test_random_files_only_ever_raise_csv_errors(
    tmp_path_factory, rows, header, skip_bad
):
    path = tmp_path_factory.mktemp("csv") / "random.csv"
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    try:
        bars, summary = read_csv_bars(path, symbol="X", skip_bad=skip_bad)
    except InvalidRequestError as exc:  # CsvFormatError and friends
        assert str(exc)
        return
    assert summary.good_rows == len(bars) > 0
    assert all(b.low <= b.high for b in bars)
