from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from marketdata import calendar


def test_regular_session_in_utc_follows_dst():
    winter = calendar.nyse_session(date(2024, 1, 10))
    summer = calendar.nyse_session(date(2024, 7, 10))
    assert (winter.open, winter.close) == (
        datetime(2024, 1, 10, 14, 30, tzinfo=UTC),
        datetime(2024, 1, 10, 21, 0, tzinfo=UTC),
    )
    assert (summer.open, summer.close) == (
        datetime(2024, 7, 10, 13, 30, tzinfo=UTC),
        datetime(2024, 7, 10, 20, 0, tzinfo=UTC),
    )
    assert winter.minutes == 390


def test_weekends_and_holidays_are_closed():
    assert calendar.nyse_session(date(2024, 1, 13)) is None  # Saturday
    for holiday in [
        date(2024, 1, 1),
        date(2024, 7, 4),
        date(2024, 11, 28),
        date(2024, 12, 25),
        date(2024, 3, 29),
        date(2025, 1, 9),
    ]:
        assert calendar.nyse_session(holiday) is None, holiday


def test_early_closes():
    for day in [
        date(2024, 7, 3),
        date(2024, 11, 29),
        date(2024, 12, 24),
        date(2023, 7, 3),
    ]:
        session = calendar.nyse_session(day)
        assert session.early_close and session.minutes == 210, day
    assert calendar.nyse_session(date(2020, 7, 3)) is None  # observed holiday
    assert not calendar.nyse_session(date(2024, 12, 23)).early_close


def test_expected_minutes():
    start = datetime(2024, 11, 25, tzinfo=UTC)
    end = datetime(2024, 12, 2, tzinfo=UTC)
    # Mon-Wed full (390 each), Thanksgiving closed, Friday early close (210).
    assert calendar.expected_minute_count("equity", start, end) == 3 * 390 + 210
    assert len(list(calendar.expected_minutes("equity", start, end))) == 3 * 390 + 210
    assert calendar.expected_minute_count("crypto", start, end) == 7 * 1440


def test_extended_session_runs_from_four_to_eight_new_york():
    from marketdata.calendar import expected_minute_count, nyse_session

    day = date(2025, 12, 2)  # a Tuesday in winter: 04:00 ET = 09:00 UTC
    session = nyse_session(day, extended=True)
    assert session.open == datetime(2025, 12, 2, 9, 0, tzinfo=UTC)
    assert session.close == datetime(2025, 12, 3, 1, 0, tzinfo=UTC)
    start = datetime(2025, 12, 2, tzinfo=UTC)
    end = start + timedelta(days=2)
    assert expected_minute_count("equity", start, end, extended=True) == 2 * 16 * 60
    assert expected_minute_count("equity", start, end) == 2 * 390


def test_extended_session_ends_at_five_on_early_close_days():
    from marketdata.calendar import nyse_session

    session = nyse_session(date(2025, 11, 28), extended=True)  # after Thanksgiving
    assert session.close == datetime(2025, 11, 28, 22, 0, tzinfo=UTC)


def test_simulator_extended_hours_trade_across_midnight_utc():
    from simulator.prices import open_mask

    day = (date(2025, 12, 3) - date(1970, 1, 1)).days  # Wednesday, UTC
    mask = open_mask("AAPL", day, "extended")
    # Tuesday's post-market runs to 01:00 UTC; Wednesday's pre-market from 09:00.
    assert mask[:60].all() and not mask[60:540].any() and mask[540:].all()
    regular = open_mask("AAPL", day, "nyse")
    assert regular.sum() == 390 and not regular[:60].any()
