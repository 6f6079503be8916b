"""`core.logs.RateLimitedLog`: what a person reading the log sees when a loop
keeps failing, on a clock the test moves."""

from __future__ import annotations

import logging

import pytest

from core.logs import RateLimitedLog, cause

LOGGER = "tests.core.logs"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failure(symbol: str = "AAPL") -> KeyError:
    try:
        {}[symbol]
    except KeyError as exc:
        return exc


@pytest.fixture
def log():
    return RateLimitedLog(logging.getLogger(LOGGER), every=60, clock=Clock())


def lines(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records]


def test_one_line_with_the_cause_and_no_traceback_above_debug(log, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert log.error("clock", "alert clock step failed for %s", "AAPL", exc=failure())
    assert lines(caplog) == [
        ("ERROR", "alert clock step failed for AAPL: KeyError: 'AAPL'")
    ]
    assert log.recovered("clock", "alert clock step works again")
    assert lines(caplog)[1] == (  # seen wherever the failure was
        "WARNING",
        "alert clock step works again after 0.0 s (1 failure)",
    )
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)


def test_the_traceback_is_a_debug_record(log, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    log.warning("clock", "alert clock step failed", exc=failure())
    first, second = caplog.records
    assert (first.levelname, first.exc_info) == ("WARNING", None)
    assert second.levelname == "DEBUG" and second.exc_info is not None
    assert "alert clock step failed: KeyError: 'AAPL'" in second.getMessage()
    assert "Traceback" in caplog.text and "in failure" in caplog.text


def test_repeats_are_left_out_then_counted_on_the_next_line(log, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _second in range(60):  # the same failure every second for a minute
        log.warning("step", "step failed", exc=failure())
        log.clock.now += 1
    assert lines(caplog) == [("WARNING", "step failed: KeyError: 'AAPL'")]
    assert log.warning("step", "step failed", exc=failure("MSFT"))
    assert lines(caplog)[1] == (
        "WARNING",
        "step failed: KeyError: 'MSFT' (59 more since the last line)",
    )


def test_keys_are_paced_apart(log, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert log.warning("a", "a failed", exc=failure())
    assert log.warning("b", "b failed", exc=failure())
    assert not log.warning("a", "a failed", exc=failure())
    assert [m for _, m in lines(caplog)] == [
        "a failed: KeyError: 'AAPL'",
        "b failed: KeyError: 'AAPL'",
    ]


def test_one_line_when_it_works_again_and_none_when_nothing_failed(log, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    assert not log.recovered("step", "step works again")
    for _ in range(3):
        log.warning("step", "step failed", exc=failure())
        log.clock.now += 2.5
    assert log.recovered("step", "step %s works again", "gaps")
    assert not log.recovered("step", "step works again")
    assert lines(caplog)[1:] == [
        ("WARNING", "step gaps works again after 7.5 s (3 failures)")
    ]


def test_a_flapping_failure_is_two_lines_a_minute_at_most(log, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _second in range(120):
        log.warning("step", "step failed", exc=failure())
        log.clock.now += 0.5
        log.recovered("step", "step works again")
        log.clock.now += 0.5
    assert lines(caplog) == [
        ("WARNING", "step failed: KeyError: 'AAPL'"),
        ("WARNING", "step works again after 0.5 s (1 failure)"),
        ("WARNING", "step failed: KeyError: 'AAPL' (59 more since the last line)"),
        ("WARNING", "step works again after 0.5 s (1 failure)"),
    ]


def test_problems_without_an_exception_are_paced_the_same(log, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(5):
        log.warning("unknown", "event for a symbol not subscribed here: %s", "TSLA")
    assert lines(caplog) == [
        ("WARNING", "event for a symbol not subscribed here: TSLA")
    ]
    assert not log.recovered("unknown", "fine again")  # nothing failed


def test_the_cause_is_one_line():
    assert cause(ValueError("bad row\nline 2 of the text")) == "ValueError: bad row"
    assert cause(TimeoutError()) == "TimeoutError"
