"""Fixtures of the chaos suite: one private stack per test module.

`build_stack(speed=..., ...)` makes a module's `chaos` fixture; the stack is
always stopped (processes by process group, the private PostgreSQL and Redis
with them) and its directory removed, whether the tests pass or not. A failed
test's report carries the tail of every process's log and the state of the
gap ledger and the history jobs. `CHAOS_KEEP_LOGS=1` keeps the stack's
directory (every log in full, the stopped cluster's data) for a post-mortem.
"""

from __future__ import annotations

import os
from datetime import time as dtime

import pytest

from tests.chaos import truth
from tests.chaos.servers import missing_tools
from tests.chaos.stack import Stack, make_root, remove_root, session_start

# Watched by the chaos user: US equities (in and out of the regular session,
# the simulator trades 04:00-20:00 New York) and crypto (24/7).
SYMBOLS = ["AAPL", "MSFT", "BTC/USD", "ETH/USD"]

# Small bounds so faults outlast them within seconds (the defaults are
# minutes): see core/settings.py and the README's reliability section.
NOTHING_LOST = {
    "STREAM_UNSTORED_MINUTES": "3",
    "STREAM_SWEEP_EVERY": "10",
    "STREAM_SWEEP_HOURS": "1",
    "HISTORY_RECLAIM_EVERY": "5",
    "HISTORY_STALE_SECONDS": "15",
}


def build_stack(
    *, speed: float, opens_at: dtime | None, extra: dict | None = None
) -> Stack:
    """A started private stack with its clock at `opens_at` New York time on
    the next trading day, running `speed` times as fast as the wall clock
    (`opens_at` None: the wall clock itself, speed 1)."""
    reason = missing_tools()
    if reason:
        pytest.skip(f"chaos stack unavailable: {reason}")
    settings = dict(NOTHING_LOST)
    # Seconds after a minute closes before the worker checks it is stored.
    # The worker's clock is the feed's (simulated) one, its store step runs
    # every real second: give the check two real seconds.
    settings["STREAM_RECONCILE_SETTLE"] = str(max(10, int(2 * speed)))
    settings.update(extra or {})
    root = make_root()
    stack = Stack(
        root=root,
        clock_speed=speed,
        clock_start=None if opens_at is None else session_start(at=opens_at),
        settings=settings,
        symbols=list(SYMBOLS),
    )
    try:
        stack.start()
    except BaseException:
        stack.stop()
        remove_root(root)
        raise
    return stack


def teardown_stack(stack: Stack) -> None:
    try:
        stack.stop()
    finally:
        if os.environ.get("CHAOS_KEEP_LOGS"):
            print(f"chaos stack logs kept in {stack.root}")
        else:
            remove_root(stack.root)


@pytest.fixture
def clean_stack(chaos):
    """Each test starts with every server running and no injected fault (a
    test that failed may have left them otherwise)."""
    if not chaos.postgres.running():
        chaos.postgres.start()
    if chaos.redis.process is None or chaos.redis.process.poll() is not None:
        chaos.redis.start()
    # The simulator holds the clock: a dead one cannot be restarted in place.
    assert "simulator" not in chaos.dead(), chaos.tail("simulator")
    for name in chaos.dead():
        chaos.spawn(name)
    chaos.set_faults(reset=True)
    yield chaos


LOG_NAMES = ("simulator", "streams", "worker", "web", "postgres", "redis")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or report.when == "teardown":
        return
    stack = getattr(item, "funcargs", {}).get("chaos")
    if not isinstance(stack, Stack):
        return
    names = [*LOG_NAMES, *(n for n in stack.processes if n not in LOG_NAMES)]
    for name in names:
        report.sections.append(
            (f"chaos log: {name}", stack.tail(name, 5000, compact=True))
        )
    try:
        state = (
            truth.ledger_summary(stack, stack.clock_start)
            + "\n"
            + truth.jobs_summary(stack)
        )
    except Exception as exc:  # the private database may be down
        state = f"(could not read the private database: {exc})"
    report.sections.append(("chaos state", state))
