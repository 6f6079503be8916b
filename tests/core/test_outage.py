"""`core.outage.Outage`: what an outage of a backing service logs, and how
often its callers may try, on a clock the test moves."""

from __future__ import annotations

import logging

import redis

from core.outage import Outage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_line_to_start_a_reminder_a_minute_and_one_line_to_end(caplog):
    clock = Clock()
    outage = Outage(
        "Redis at redis://x:1/0", logger=logging.getLogger("t"), clock=clock
    )
    caplog.set_level(logging.INFO, logger="t")
    error = redis.ConnectionError("Error 111 connecting to x:1. Connection refused.")

    assert outage.should_try() and not outage.down
    assert outage.failed(error, doing="storing snapshots", impact="Bars are kept")
    assert outage.down
    # Every later failure and skip within the minute is silent.
    for _second in range(59):
        clock.now += 1
        assert outage.should_try()  # once a second
        assert not outage.should_try()
        assert not outage.failed(error, doing="storing the health report")
        outage.skipped("health reports")
    clock.now += 0.5
    assert not outage.should_try()
    clock.now += 0.5
    assert outage.failed(error, doing="storing snapshots")  # the reminder
    clock.now += 30
    assert outage.succeeded()
    assert not outage.succeeded() and not outage.down

    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            "WARNING",
            "Redis at redis://x:1/0 is unreachable: storing snapshots failed "
            "(Error 111 connecting to x:1. Connection refused.). Bars are kept. "
            "Trying again at most once every 1.0 s; a reminder every 1 min 0 s.",
        ),
        (
            "WARNING",
            "Redis at redis://x:1/0 still unreachable after 1 min 0 s (last error: "
            "Error 111 connecting to x:1. Connection refused.); skipped meanwhile: "
            "59 health reports. Bars are kept.",
        ),
        (
            "INFO",
            "Redis at redis://x:1/0 reachable again after 1 min 30 s; skipped "
            "meanwhile: 59 health reports.",
        ),
    ]


def test_a_second_outage_is_reported_afresh(caplog):
    clock = Clock()
    outage = Outage("Redis", logger=logging.getLogger("t"), clock=clock)
    caplog.set_level(logging.INFO, logger="t")
    outage.failed(OSError("refused"), doing="reading snapshots")
    outage.skipped("status reads", 3)
    clock.now += 2.25
    outage.succeeded()
    clock.now += 10
    assert outage.failed(OSError("reset"), doing="sending live updates")
    assert outage.outages == 2
    assert [r.getMessage() for r in caplog.records][1:] == [
        "Redis reachable again after 2.2 s; skipped meanwhile: 3 status reads.",
        "Redis is unreachable: sending live updates failed (reset). Trying again "
        "at most once every 1.0 s; a reminder every 1 min 0 s.",
    ]


def test_a_success_that_began_before_the_outage_does_not_end_it(caplog):
    clock = Clock()
    outage = Outage("Redis", logger=logging.getLogger("t"), clock=clock)
    begun = clock()  # another thread starts a write that will work
    clock.now += 0.01
    outage.failed(ConnectionError("refused"), doing="reading")
    assert not outage.succeeded(attempted_at=begun)
    assert outage.down
    assert outage.succeeded(attempted_at=clock())
