"""CSV files as people really have them, and hostile ones: values storage
cannot keep, encodings, oversize fields, absurd timestamps, real exports
(Binance dumps, MetaTrader, CRLF), and flat memory on large files."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketdata.providers.base import InvalidRequestError
from marketdata.providers.csv_files import CsvFormatError, CsvProvider, read_csv_bars

HEADER = "timestamp,open,high,low,close,volume,vwap,trades\n"
GOOD = "2024-03-05T14:{m:02d}:00Z,100,101,99,100.5,10,100.2,7\n"


def minute_file(tmp_path, *bad: str, name: str = "bars.csv") -> str:
    """Header, two good rows (lines 2-3), the `bad` rows (lines 4...), one
    good row after them."""
    rows = [GOOD.format(m=0), GOOD.format(m=1)]
    rows += [row + "\n" for row in bad]
    rows.append(GOOD.format(m=59))
    path = tmp_path / name
    path.write_text(HEADER + "".join(rows))
    return str(path)


def bad_reasons(path: str, **options) -> dict[int, str]:
    with pytest.raises(CsvFormatError) as info:
        read_csv_bars(path, symbol="X", **options)
    assert "nothing loaded" in str(info.value)
    return {b.line: b.reason for b in info.value.bad_rows}


# --- values storage cannot keep ------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "words"),
    [
        # numeric(20, 8) keeps 8 decimals: more would be rounded (to 0 here).
        (
            "2024-03-05T14:02:00Z,0.000000001,0.000000001,0.000000001,0.000000001,1,,",
            ["open 0.000000001", "more than 8 decimal places"],
        ),
        ("2024-03-05T14:02:00Z,100,101,99,100.5,0.123456789,,", ["volume 0.123456789"]),
        ("2024-03-05T14:02:00Z,100,101,99,100.5,1,100.0000000001,", ["vwap"]),
        ("2024-03-05T14:02:00Z,100,101,99,100.5,1,-100.2,", ["negative vwap"]),
        ("2024-03-05T14:02:00Z,100,101,99,100.5,1e25,,", ["volume 1e25", "range"]),
        ("2024-03-05T14:02:00Z,1,1e13,1,1,1,,", ["high 1e13", "range"]),
        ("2024-03-05T14:02:00Z,100,101,99,100.5,1,1e15,", ["vwap 1e15", "range"]),
        ("2024-03-05T14:02:00Z,100,101,99,100.5,1,,99999999999", ["trades", "range"]),
        ("2024-03-05T14:02:00Z,-1,101,-2,100.5,1,,", ["prices must be positive"]),
        ("2024-03-05T14:02:00Z,100,101,99,100.5,-1,,", ["negative volume"]),
        ("2024-03-05T14:02:00Z,1\x00,101,99,100.5,1,,", ["bad open"]),
    ],
)
def test_values_storage_cannot_keep_are_bad_rows(tmp_path, row, words):
    path = minute_file(tmp_path, row)
    reasons = bad_reasons(path)
    assert list(reasons) == [4]
    for word in words:
        assert word.lower() in reasons[4].lower(), reasons[4]
    bars, summary = read_csv_bars(path, symbol="X", skip_bad=True)
    assert len(bars) == 3 and [b.line for b in summary.bad_rows] == [4]
    assert all(b.open > 0 and b.volume < Decimal("1e20") for b in bars)


def test_eight_decimals_and_trailing_zeros_are_kept(tmp_path):
    path = minute_file(
        tmp_path,
        "2024-03-05T14:02:00Z,0.00000001,0.00000002,0.00000001,0.00000002,"
        "99999999999999999999.99999999,0.000000010000,2147483647",
    )
    bars, _ = read_csv_bars(path, symbol="X")
    assert bars[2].open == Decimal("0.00000001")
    assert bars[2].volume == Decimal("99999999999999999999.99999999")
    assert bars[2].vwap == Decimal("0.00000001") and bars[2].trade_count == 2**31 - 1


# --- timestamps ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stamp", "words"),
    [
        ("1900-01-02T14:02:00Z", "before 1970"),
        ("2999-01-02T14:02:00Z", "after tomorrow"),
        ("1969-12-31T23:59:00Z", "before 1970"),
        ("-62135596800", "before 1970"),  # the epoch of 0001-01-01, seconds
        ("-62135596800000000", "before 1970"),  # ... and microseconds
        ("0001-01-01T00:00:00Z", "before 1970"),
        ("9999-12-31T23:59:00Z", "after tomorrow"),
        ("99999999999999999999", "bad timestamp"),
    ],
)
def test_absurd_timestamps_are_bad_rows(tmp_path, stamp, words):
    path = minute_file(tmp_path, f"{stamp},100,101,99,100.5,1,,")
    reasons = bad_reasons(path)
    assert list(reasons) == [4] and words in reasons[4], reasons


def test_tomorrow_is_accepted_and_the_day_after_is_not(tmp_path):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stamps = [today + timedelta(days=1, hours=23, minutes=m) for m in (57, 58, 59)]
    stamps.append(today + timedelta(days=2, minutes=1))
    path = tmp_path / "edge.csv"
    path.write_text(
        HEADER + "".join(f"{t.isoformat()},100,101,99,100.5,1,,\n" for t in stamps)
    )
    reasons = bad_reasons(str(path))
    assert list(reasons) == [5] and "after tomorrow" in reasons[5]


# --- encodings ----------------------------------------------------------------------
YAHOO = (
    "Date,Open,High,Low,Close,Adj Close,Volume\n"
    "2024-01-02,187.149994,188.440002,183.889999,185.639999,184.938217,82488700\n"
    "2024-01-03,184.220001,185.880005,183.429993,184.250000,183.553467,58414500\n"
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be"])
def test_unicode_files_with_or_without_bom_are_detected(tmp_path, encoding):
    path = tmp_path / "yahoo.csv"
    data = YAHOO.encode(encoding)
    if encoding == "utf-16-be":  # BOM written by hand: the codec adds none
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    bars, summary = read_csv_bars(path, symbol="AAPL")
    assert summary.layout == "yahoo" and len(bars) == 2
    assert bars[1].close == Decimal("184.250000")


def test_latin1_file_needs_encoding_and_says_so(tmp_path):
    path = tmp_path / "mapped.csv"
    text = (
        "Datum,Eröffnung,Hoch,Tief,Schluss,Umsatz\n"
        "2024-01-02 09:30,10.5,10.9,10.4,10.8,300\n"
        "2024-01-02 09:31,10.8,10.85,10.7,10.75,200\n"
    )
    path.write_bytes(text.encode("latin-1"))
    columns = {"ts": "Datum", "open": "Eröffnung", "high": "Hoch", "low": "Tief"}
    columns |= {"close": "Schluss", "volume": "Umsatz"}
    with pytest.raises(CsvFormatError) as info:
        read_csv_bars(path, symbol="SAP", columns=columns)
    message = str(info.value)
    assert "line 1" in message and "UTF-8" in message and "--encoding" in message
    provider = CsvProvider(path=path, columns=columns, encoding="latin-1")
    assert len(list(provider.iter_bars(symbol="SAP"))) == 2


def test_a_bad_byte_deep_in_the_file_is_named_by_line(tmp_path):
    path = tmp_path / "late.csv"
    rows = "".join(GOOD.format(m=m) for m in range(50))
    path.write_bytes((HEADER + rows).encode() + b"2024-03-05T15:00:00Z,1\xe9\n")
    with pytest.raises(CsvFormatError, match=r"line 52 is not valid UTF-8"):
        read_csv_bars(path, symbol="X")


def test_utf16_without_bom_and_unknown_encoding_are_clear(tmp_path):
    path = tmp_path / "nobom.csv"
    path.write_bytes(YAHOO.encode("utf-16-le"))
    with pytest.raises(CsvFormatError, match="UTF-16 without a byte-order mark"):
        read_csv_bars(path, symbol="AAPL")
    bars = list(CsvProvider(path=path, encoding="utf-16-le").iter_bars(symbol="AAPL"))
    assert len(bars) == 2
    with pytest.raises(InvalidRequestError, match="unknown encoding 'klingon'"):
        CsvProvider(path=path, encoding="klingon")


# --- oversize fields and lines ------------------------------------------------------
def test_field_over_128_kb_is_a_bad_row_naming_its_line(tmp_path):
    path = minute_file(tmp_path, "2024-03-05T14:02:00Z," + "9" * 200_000 + ",1,1,1,1,,")
    reasons = bad_reasons(path)
    assert list(reasons) == [4] and "longer than 131072 characters" in reasons[4]
    bars, summary = read_csv_bars(path, symbol="X", skip_bad=True)
    assert len(bars) == 3 and summary.rows == 4


def test_quoted_huge_field_and_a_file_without_line_breaks(tmp_path):
    path = minute_file(
        tmp_path, '2024-03-05T14:02:00Z,"' + "x" * 300_000 + '",1,1,1,1,,'
    )
    assert list(bad_reasons(path)) == [4]
    flat = tmp_path / "flat.csv"  # e.g. a binary file: no line break at all
    flat.write_text(HEADER.strip() + "," * 3_000_000)
    with pytest.raises(CsvFormatError, match="line 1 is longer than"):
        read_csv_bars(flat, symbol="X")


# --- real exports -------------------------------------------------------------------
BINANCE_MS = (
    "1704067200000,42283.58000000,42298.62000000,42261.02000000,42298.61000000,"
    "35.92724000,1704067259999,1519032.21940940,1327,17.67720000,747362.81970700,0\n"
    "1704067260000,42298.62000000,42320.00000000,42298.61000000,42319.99000000,"
    "21.07264000,1704067319999,891580.40232940,903,12.73520000,538815.64003420,0\n"
)
BINANCE_US = BINANCE_MS.replace("1704067200000", "1704067200000000").replace(
    "1704067260000", "1704067260000000"
)


@pytest.mark.parametrize("text", [BINANCE_MS, BINANCE_US])
def test_binance_kline_dump_without_header(tmp_path, text):
    path = tmp_path / "BTCUSDT-1m-2024-01-01.csv"
    path.write_text(text)
    bars, summary = read_csv_bars(path, symbol="BTC/USD")
    assert summary.layout == "binance" and summary.timeframe == "1m"
    assert summary.rows == 2 and not summary.bad_rows
    assert bars[0].ts == datetime(2024, 1, 1, tzinfo=UTC)
    assert bars[0].open == Decimal("42283.58") and bars[0].trade_count == 1327
    assert bars[1].volume == Decimal("21.07264")


def test_binance_dump_with_header_and_bad_line_numbers(tmp_path):
    header = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore\n"
    )
    path = tmp_path / "with_header.csv"
    path.write_text(header + BINANCE_MS)
    bars, summary = read_csv_bars(path, symbol="BTC/USD")
    assert len(bars) == 2 and bars[1].trade_count == 903
    headerless = tmp_path / "headerless.csv"
    headerless.write_text(BINANCE_MS + BINANCE_MS.splitlines()[0] + "\n")
    reasons = bad_reasons(str(headerless))  # no header: data starts on line 1
    assert (
        list(reasons) == [3] and "duplicate timestamp (first on line 1)" in reasons[3]
    )


def test_metatrader5_export_utf16_tabs_dotted_dates(tmp_path):
    text = (
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\r\n"
        "2024.01.02\t09:30:00\t1.10400\t1.10420\t1.10390\t1.10410\t120\t0\t2\r\n"
        "2024.01.02\t09:31:00\t1.10410\t1.10450\t1.10400\t1.10440\t98\t0\t2\r\n"
    )
    path = tmp_path / "EURUSD_M1.csv"
    path.write_bytes(text.encode("utf-16"))  # MetaTrader 5 writes UTF-16 LE + BOM
    bars, summary = read_csv_bars(path, symbol="EUR/USD", timezone="UTC")
    assert summary.timeframe == "1m" and len(bars) == 2
    assert bars[0].ts == datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
    assert bars[1].close == Decimal("1.10440")


def test_metatrader4_history_export_without_header(tmp_path):
    path = tmp_path / "EURUSD1.csv"
    path.write_text(
        "2024.01.02,09:30,1.10400,1.10420,1.10390,1.10410,120\r\n"
        "2024.01.02,09:31,1.10410,1.10450,1.10400,1.10440,98\r\n"
    )
    bars, summary = read_csv_bars(path, symbol="EUR/USD", timezone="UTC")
    assert summary.layout == "metatrader" and len(bars) == 2
    assert bars[1].ts == datetime(2024, 1, 2, 9, 31, tzinfo=UTC)
    assert bars[1].volume == Decimal(98)


def test_crlf_yahoo_file_with_null_rows(tmp_path):
    path = tmp_path / "yahoo_crlf.csv"
    crlf = YAHOO.replace("\n", "\r\n") + "2024-01-04,null,null,null,null,null,null\r\n"
    path.write_bytes(crlf.encode())
    bars, summary = read_csv_bars(path, symbol="AAPL", skip_bad=True)
    assert len(bars) == 2 and [b.line for b in summary.bad_rows] == [4]


def test_headerless_file_of_another_shape_asks_for_a_header(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(CsvFormatError, match="cannot find column"):
        read_csv_bars(path, symbol="X")


# --- memory -------------------------------------------------------------------------
def test_validating_a_large_file_keeps_memory_flat(tmp_path):
    """Python memory allocated while validating 150,000 minutes stays under
    a bound that a per-row structure (a dict of timestamps, ~130 bytes a row)
    would blow through."""
    path = tmp_path / "large.csv"
    start = datetime(2021, 1, 1, tzinfo=UTC)
    with path.open("w") as handle:
        handle.write(HEADER)
        for i in range(150_000):
            stamp = (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            handle.write(f"{stamp},100,101,99,100.5,10,,\n")
    provider = CsvProvider(path=path)
    tracemalloc.start()
    try:
        summary = provider.validate()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.good_rows == 150_000
    # About 0.2 MB now; a dict of every timestamp took over 25 MB.
    assert peak < 8 * 1024 * 1024, f"{peak / 1e6:.1f} MB"


def test_too_many_bad_rows_refuse_the_file_even_with_skip_bad(tmp_path, monkeypatch):
    from marketdata.providers import csv_files

    monkeypatch.setattr(csv_files, "MAX_BAD_ROWS", 3)
    path = minute_file(tmp_path, *["2024-03-05T14:02:00Z,x,1,1,1,1,,"] * 4)
    with pytest.raises(CsvFormatError, match="more than 3 bad rows, nothing loaded"):
        read_csv_bars(path, symbol="X", skip_bad=True)
