"""One fault test's span of simulated time and the check that it healed.

An `Episode` starts at the first whole simulated minute after the test
begins. The test arms alert rules, makes its fault, lets the market run a
little longer and calls `heal()`, which polls (no timing assertions: a
generous deadline only bounds a hang) until, over the episode's minutes:

- every stored minute of every streamed instrument equals the vendor's (0
  missing, 0 extra, 0 duplicate, 0 differing OHLCV),
- the gap ledger has nothing open or being repaired,
- every expected alert is recorded exactly once, at its crossing trade,
- every history job is done, each chunk done (or skipped as covered), and the
  months it loaded equal the vendor's,

and fails with what is still wrong (plus every process's log tail, added by
the report hook in `conftest.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from marketdata.calendar import expected_minute_count
from tests.chaos import truth
from tests.chaos.stack import Stack

MINUTE = timedelta(minutes=1)


def ceil_minute(at: datetime) -> datetime:
    floor = at.replace(second=0, microsecond=0)
    return floor if floor == at else floor + MINUTE


@dataclass
class HistoryLoad:
    """A `load_history` run watched by its own command (`load_history` is a
    process of the stack while it runs)."""

    symbols: list[str]
    start: datetime
    end: datetime


@dataclass
class Episode:
    stack: Stack
    name: str
    start: datetime
    end: datetime | None = None
    alerts: list[truth.ExpectedAlert] = field(default_factory=list)
    loads: list[HistoryLoad] = field(default_factory=list)
    last_report: str = ""

    @classmethod
    def begin(cls, stack: Stack, name: str) -> Episode:
        start = ceil_minute(stack.sim_now())
        stack.wait_sim(start)
        return cls(stack=stack, name=name, start=start)

    # --- alerts --------------------------------------------------------------
    def arm_alerts(self, *, quiet_until: datetime, cross_by: datetime) -> None:
        """One-shot price rules, one per streamed instrument whose tape allows
        it, that stay uncrossed from now until `quiet_until` and cross before
        `cross_by`. At least one must be possible (else the episode would not
        test alerts at all)."""
        now = self.stack.sim_now()
        planned = [
            rule
            for symbol in self.stack.symbols
            if (
                rule := truth.crossing_rule(
                    symbol,
                    quiet=(now - MINUTE, quiet_until),
                    cross_by=cross_by,
                    seed=self.stack.seed,
                )
            )
            is not None
        ]
        assert planned, (
            f"no instrument's tape crosses a fresh high or low between "
            f"{quiet_until:%H:%M} and {cross_by:%H:%M}: widen the span"
        )
        created = truth.create_rules(self.stack, planned, note=self.name)
        self.alerts += created
        self.stack.alerts += created
        assert self.stack.sim_now() < quiet_until, "rules were created too late"

    # --- the end -------------------------------------------------------------
    def close(self, *, settle_minutes: float = 2) -> None:
        """Let the market run `settle_minutes` more and end the window at
        the last whole minute (after every expected crossing)."""
        latest = max((a.ts for a in self.alerts), default=self.start)
        self.stack.wait_sim(max(self.stack.sim_now(), latest + MINUTE))
        self.stack.sim_minutes(settle_minutes)
        self.end = self.stack.sim_now().replace(second=0, microsecond=0)

    def problems(self) -> list[str]:
        stack = self.stack
        problems = []
        comparison = truth.compare(stack, stack.symbols, self.start, self.end)
        # Not a vacuous window: crypto always trades, equities whenever the
        # calendar's extended session overlaps it (the simulator agrees).
        equities_trade = expected_minute_count(
            "equity", self.start, self.end, extended=True
        )
        idle = [
            s
            for s, n in comparison.expected.items()
            if not n and ("/" in s or equities_trade)
        ]
        assert not idle, f"the vendor has no minutes of {idle} in the window"
        if not comparison.ok:
            problems.append(
                "stored minutes differ from the vendor's:\n" + comparison.summary()
            )
        gaps = truth.unsettled_gaps(stack, self.start, self.end)
        if gaps:
            problems.append(
                f"{len(gaps)} gap(s) still open or repairing, e.g. "
                + "; ".join(
                    f"{g[0]} {g[1]:%H:%M}–{g[2]:%H:%M} {g[3]} attempts={g[4]}"
                    for g in gaps[:6]
                )
            )
        problems += truth.alert_problems(stack, self.alerts)
        unfinished = [
            (job_id, state, counts)
            for job_id, state, counts in truth.job_states(stack)
            if state != "done" or set(counts) - {"done", "skipped"}
        ]
        if unfinished:
            problems.append(f"history jobs not done: {unfinished}")
        else:
            for load in self.loads:
                months = truth.compare(stack, load.symbols, load.start, load.end)
                if not months.ok:
                    problems.append("loaded months differ:\n" + months.summary())
        return problems

    def heal(self, *, deadline: float = 150.0) -> None:
        """Wait until nothing is wrong (see the module docstring); fail with
        what still is when `deadline` real seconds pass."""
        assert self.end is not None, "close() the episode first"
        give_up = time.monotonic() + deadline
        while True:
            try:
                problems = self.problems()
            except (psycopg.Error, OSError) as exc:  # the database may be restarting
                problems = [f"checking failed: {type(exc).__name__}: {exc}"]
            if not problems:
                dead = self.stack.dead()
                assert not dead, f"processes died and stayed dead: {dead}"
                return
            if time.monotonic() > give_up:
                self.last_report = "\n".join(problems)
                raise AssertionError(
                    f"{self.name}: not healed within {deadline:.0f} s "
                    f"(window {self.start:%H:%M}–{self.end:%H:%M} UTC, "
                    f"simulated clock now {self.stack.sim_now():%H:%M}):\n"
                    + self.last_report
                )
            time.sleep(2.0)
