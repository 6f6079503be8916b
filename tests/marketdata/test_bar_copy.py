"""`bars_upsert`'s own COPY text (`marketdata.bar_copy.copy_text`) stores
exactly what psycopg's dumpers store: the same rows written through it,
through psycopg's `write_row` and through INSERTs (the path of servers that
cannot COPY) read back identical, column by column, as the server's text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from marketdata.bar_copy import copy_text, latest_rows
from marketdata.models import Timeframe
from marketdata.services import BarRow, bars_upsert

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")


class Stamp(datetime):
    """A datetime subclass: its rows go through psycopg's `write_row`."""


def odd_rows(instrument_id: int, *, stamp=datetime) -> list[tuple]:
    """Values whose text could go wrong: rounding past 8 decimals, exponents,
    trailing zeros, ints and floats, NULLs, NaN, microseconds, a
    non-UTC zone, a day before 1970, a `Timeframe` member, and a duplicate
    key whose last row must win."""

    def ts(*args, tz=UTC):
        return stamp(*args, tzinfo=tz)

    d = Decimal
    return [
        (instrument_id, "1m", ts(2031, 1, 2, 14, 30), d("1.123456785"), d("1E+2"),
         d("0.00000001"), d("100.10000"), d("12345.123456789"), None, None),
        (instrument_id, "1m", ts(2031, 1, 2, 14, 31, 0, 250), 100, 1.5, 0.1,
         d("-0"), 7, d("NaN"), 0),
        (instrument_id, Timeframe.MINUTE, ts(2031, 1, 2, 9, 32, tz=NEW_YORK),
         d("99999999999.99999999"), d("2"), d("1"), d("1.5"), d("0"), d("0.5"), 42),
        (instrument_id, "1h", ts(1969, 12, 31, 23, 0, 59, 999999), d("3"), d("4"),
         d("2"), d("3.25"), d("1000000"), d("3.1"), 2**31 - 1),
        (instrument_id, "1m", ts(2031, 1, 2, 14, 30), d("5"), d("6"), d("4"),
         d("5.5"), d("10"), d("5.25"), 3),
    ]  # fmt: skip


def stored(instrument_id: int) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        cursor.execute(
            "SELECT timeframe, ts::text, open::text, high::text, low::text, "
            "close::text, volume::text, vwap::text, trade_count, provider, "
            "origin, revision FROM marketdata_bar WHERE instrument_id = %s "
            "ORDER BY timeframe, ts",
            [instrument_id],
        )
        return cursor.fetchall()


def test_plain_rows_are_encoded_here_and_others_by_psycopg():
    rows = odd_rows(1)
    [(chunk, text)] = copy_text(rows, ("alpaca", "history"))
    assert chunk == rows
    lines = text.splitlines()
    assert lines[0] == (
        "1\t1m\t2031-01-02 14:30:00+00\t1.123456785\t1E+2\t1E-8\t100.10000"
        "\t12345.123456789\t\\N\t\\N\talpaca\thistory"
    )
    assert lines[1].split("\t")[2:] == [
        "2031-01-02 14:31:00.000250+00", "100", "1.5", "0.1", "-0", "7", "NaN", "0",
        "alpaca", "history",
    ]  # fmt: skip
    assert lines[2].split("\t")[2] == "2031-01-02 14:32:00+00"  # 9:32 in New York
    assert lines[3].split("\t")[2] == "1969-12-31 23:00:59.999999+00"
    snan = rows[0][:8] + (Decimal("sNaN"),) + rows[0][9:]
    # Left to psycopg: a datetime subclass, a backslash or a tab in a text
    # value (COPY would unescape or split it), a naive ts, a Decimal sNaN.
    for odd, tail in (
        ([snan], ("alpaca", "history")),
        (odd_rows(1, stamp=Stamp), ("alpaca", "history")),
        (rows, ("we\\ird", "history")),
        (rows, ("we\tird", "history")),
        ([rows[0][:2] + (datetime(2031, 1, 2),) + rows[0][3:]], ("a", "history")),
    ):
        assert [text for _, text in copy_text(odd, tail)] == [None]


@pytest.mark.parametrize("provider", ["alpaca", "we\\ird"])
def test_copy_text_write_row_and_inserts_store_identical_rows(
    instruments, settings, provider
):
    """Rounding to the column's 8 decimals, the last of a duplicate key, NULLs,
    instants in UTC: all the same (a backslash in a text value is left to
    psycopg: COPY would have dropped it)."""
    instrument_id = instruments["AAPL"].pk
    results = []
    for stamp, copy in ((datetime, "on"), (Stamp, "on"), (datetime, "off")):
        settings.BAR_COPY = copy
        rows = odd_rows(instrument_id, stamp=stamp)
        assert bars_upsert(rows=rows, provider=provider).written == 4
        results.append(stored(instrument_id))
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM marketdata_bar WHERE instrument_id = %s", [instrument_id]
            )
    assert results[0] == results[1] == results[2]
    assert results[0] == [
        ("1h", "1969-12-31 23:00:59.999999+00", "3.00000000", "4.00000000",
         "2.00000000", "3.25000000", "1000000.00000000", "3.10000000", 2**31 - 1,
         provider, "history", 0),
        ("1m", "2031-01-02 14:30:00+00", "5.00000000", "6.00000000", "4.00000000",
         "5.50000000", "10.00000000", "5.25000000", 3, provider, "history", 0),
        ("1m", "2031-01-02 14:31:00.00025+00", "100.00000000", "1.50000000",
         "0.10000000", "0.00000000", "7.00000000", "NaN", 0, provider, "history",
         0),
        ("1m", "2031-01-02 14:32:00+00", "99999999999.99999999", "2.00000000",
         "1.00000000", "1.50000000", "0.00000000", "0.50000000", 42, provider,
         "history", 0),
    ]  # fmt: skip


@pytest.mark.parametrize("copy", ["on", "off"])
def test_stored_rows_are_kept_unless_replacing(instruments, settings, copy):
    settings.BAR_COPY = copy
    instrument_id = instruments["MSFT"].pk
    start = datetime(2031, 3, 3, 14, 30, tzinfo=UTC)

    def row(minute: int, close: str, vwap: str | None = None) -> BarRow:
        return BarRow(
            instrument_id=instrument_id,
            timeframe="1m",
            ts=start + timedelta(minutes=minute),
            open=Decimal("10"),
            high=Decimal("11"),
            low=Decimal("9"),
            close=Decimal(close),
            volume=Decimal("100"),
            vwap=None if vwap is None else Decimal(vwap),
        )

    assert bars_upsert(rows=[row(0, "10.5"), row(2, "10.25")], provider="a").written
    again = bars_upsert(
        rows=[row(0, "10.75", "10.1"), row(1, "10.5"), row(2, "10.25")],
        provider="b",
    )
    assert (again.written, again.received) == (1, 3)
    closes = [(r[1][11:16], r[5], r[7], r[9]) for r in stored(instrument_id)]
    assert closes == [
        ("14:30", "10.50000000", None, "a"),
        ("14:31", "10.50000000", None, "b"),
        ("14:32", "10.25000000", None, "a"),
    ]
    replaced = bars_upsert(
        rows=[row(0, "10.75", "10.1"), row(1, "10.5")], provider="b", replace=True
    )
    assert replaced.written == 1
    first = stored(instrument_id)[0]
    assert (first[5], first[7], first[9], first[11]) == (
        "10.75000000",
        "10.10000000",
        "b",
        1,
    )


def test_latest_rows_keeps_the_last_of_a_key_and_passes_a_page_through():
    t = datetime(2031, 1, 2, tzinfo=UTC)
    minute = timedelta(minutes=1)
    page = [(1, "1m", t + i * minute, i) for i in range(3)]
    rows, spans = latest_rows(page)
    assert rows is page
    assert spans == {(1, "1m"): (t, t + 2 * minute, 3)}

    mixed = [
        (1, "1m", t + minute, "a"),
        (2, "1m", t, "b"),
        (1, "1m", t, "c"),
        (1, "1m", t + minute, "d"),
    ]
    rows, spans = latest_rows(mixed)
    assert rows == [(1, "1m", t + minute, "d"), (2, "1m", t, "b"), (1, "1m", t, "c")]
    assert spans == {(1, "1m"): (t, t + minute, 2), (2, "1m"): (t, t, 1)}
    # One instrument, a repeated minute: not a plain page.
    rows, spans = latest_rows(page + page[-1:])
    assert rows == page
    assert spans == {(1, "1m"): (t, t + 2 * minute, 3)}


@pytest.mark.parametrize("copy", ["on", "off"])
def test_a_decimal_snan_is_stored_as_nan_as_psycopg_sends_it(
    instruments, settings, copy
):
    settings.BAR_COPY = copy
    instrument_id = instruments["AAPL"].pk
    row = odd_rows(instrument_id)[0]
    bars_upsert(rows=[row[:8] + (Decimal("sNaN"),) + row[9:]], provider="a")
    assert [r[7] for r in stored(instrument_id)] == ["NaN"]


@pytest.mark.parametrize("copy", ["on", "off"])
def test_a_rerun_finds_every_stored_key_to_the_microsecond(instruments, settings, copy):
    """Stored keys are matched as microseconds since 1970: before 1970, in
    another zone, with microseconds; a key one microsecond off is new."""
    settings.BAR_COPY = copy
    instrument_id = instruments["AAPL"].pk
    rows = odd_rows(instrument_id)
    assert bars_upsert(rows=rows, provider="a").written == 4
    assert bars_upsert(rows=rows, provider="a").written == 0
    nudged = [r[:2] + (r[2] + timedelta(microseconds=1),) + r[3:] for r in rows]
    again = bars_upsert(rows=rows + nudged[:2], provider="a")
    assert (again.written, again.received) == (2, 7)
    assert len(stored(instrument_id)) == 6
