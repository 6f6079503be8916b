"""The faults, each one healed by the stack alone, then checked.

Shared by the suite's short runs (`test_faults.py`, a fast clock) and the
long ones (`test_faults_long.py`, `make chaos`, the wall clock): a scenario
takes its durations in simulated time. Each makes one fault and then only
waits; `Episode.heal` checks the minutes, alerts, ledger and history jobs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from streaming.aggregator import LATE_MINUTES
from tests.chaos.episode import Episode, HistoryLoad
from tests.chaos.stack import Stack

MINUTE = timedelta(minutes=1)


def unstored_memory(stack: Stack) -> timedelta:
    """How long the worker keeps closed minutes while storing fails: they are
    dropped LATE_MINUTES after they close unless still unstored, then up to
    STREAM_UNSTORED_MINUTES more per instrument (streaming.aggregator)."""
    return MINUTE * (LATE_MINUTES + int(stack.settings["STREAM_UNSTORED_MINUTES"]))


def baseline(stack: Stack, *, span: timedelta) -> None:
    episode = Episode.begin(stack, "baseline")
    episode.arm_alerts(
        quiet_until=episode.start + MINUTE, cross_by=episode.start + span
    )
    episode.close()
    episode.heal()


def postgres_down(
    stack: Stack, *, outage: timedelta, lead: timedelta = 2 * MINUTE,
    deadline: float = 150,
) -> None:  # fmt: skip
    """PostgreSQL crashes (immediate stop) for longer than the stream
    worker's unstored-minutes memory, then comes back. `lead`: time for the
    worker to load the new alert rules before the database goes."""
    assert outage > unstored_memory(stack), "the outage must outlast the memory"
    episode = Episode.begin(stack, "postgres-down")
    fault_at = episode.start + lead
    # Alerts that fire while the database is away are recorded later, once.
    episode.arm_alerts(quiet_until=fault_at, cross_by=fault_at + outage - MINUTE)
    stack.wait_sim(fault_at)
    stack.postgres.crash()
    down = stack.sim_now()
    stack.wait_sim(down + outage)
    stack.postgres.start()
    assert stack.sim_now() - down > unstored_memory(stack)
    episode.close()
    episode.heal(deadline=deadline)


def redis_down(
    stack: Stack,
    *,
    outage: timedelta,
    lead: timedelta = 2 * MINUTE,
    malformed: timedelta | None = None,
    deadline: float = 150,
) -> None:
    """Redis dies and comes back empty: queued jobs, rule-change counters,
    rate limits and channel-layer subscriptions are gone. With `malformed`,
    the provider also sends bad frames for that long in the middle of the
    outage, so gaps are found (and their repairs queued) while Redis is away."""
    episode = Episode.begin(stack, "redis-down")
    fault_at = episode.start + lead
    bad_frames_at = fault_at + (outage - (malformed or timedelta(0))) / 2
    # The rules cross while Redis is away, before the bad frames: a crossing
    # trade inside a malformed frame never reaches the alert engine (the
    # rule then fires on the next crossing trade, which the truth would not
    # expect).
    cross_by = bad_frames_at if malformed is not None else fault_at + outage
    episode.arm_alerts(quiet_until=fault_at, cross_by=cross_by)
    stack.wait_sim(fault_at)
    stack.redis.kill()
    if malformed is not None:
        stack.wait_sim(bad_frames_at)
        stack.set_faults(malformed_rate=0.25)
        stack.sim_minutes(malformed / MINUTE)
        stack.set_faults(malformed_rate=0.0)
    stack.wait_sim(fault_at + outage)
    stack.redis.start()
    episode.close()
    episode.heal(deadline=deadline)


def streams_killed(
    stack: Stack, *, down: timedelta, boot: timedelta = 2 * MINUTE,
    deadline: float = 150,
) -> None:  # fmt: skip
    """`start_streams` gets SIGKILL half-way through a minute (whatever it
    held in memory is gone) and is started again after `down`. `boot`: time
    the new worker gets to stream again before the alert rules cross."""
    episode = Episode.begin(stack, "streams-killed")
    kill_at = episode.start + MINUTE + timedelta(seconds=30)
    back_at = kill_at + down
    # Rules made before the crash are loaded again by the new worker and
    # cross once it runs (a cross no worker saw fires nothing, by design).
    episode.arm_alerts(quiet_until=back_at + boot, cross_by=back_at + boot + 6 * MINUTE)
    stack.wait_sim(kill_at)
    stack.kill("streams")
    stack.wait_sim(back_at)
    stack.spawn("streams")
    streaming = wait_live(stack, since=back_at)
    first_cross = min(a.ts for a in episode.alerts)
    assert streaming < first_cross, (
        f"the restarted worker streamed only from {streaming:%H:%M:%S}, after the "
        f"first alert crossing at {first_cross:%H:%M:%S}: give it a longer boot"
    )
    episode.close()
    episode.heal(deadline=deadline)


def malformed_frames(stack: Stack, *, span: timedelta, deadline: float = 150) -> None:
    """A quarter of the provider's data frames arrive cut in half."""
    episode = Episode.begin(stack, "malformed-frames")
    fault_at = episode.start + MINUTE
    fault_end = fault_at + span
    episode.arm_alerts(quiet_until=fault_end + MINUTE, cross_by=fault_end + 7 * MINUTE)
    stack.wait_sim(fault_at)
    stack.set_faults(malformed_rate=0.25)
    stack.wait_sim(fault_end)
    stack.set_faults(malformed_rate=0.0)
    episode.close()
    episode.heal(deadline=deadline)


def dramatiq_killed(
    stack: Stack, *, symbols: list[str], start: str, end: str, kills: int = 1,
    deadline: float = 150,
) -> None:  # fmt: skip
    """The Dramatiq worker (its whole process group) gets SIGKILL half-way
    through a history chunk, `kills` times, and is started again each time."""
    episode = Episode.begin(stack, "dramatiq-killed")
    name = f"load-{'-'.join(s.replace('/', '') for s in symbols)}"
    load = start_load(stack, name, symbols, start, end)
    for _ in range(kills):
        wait_mid_chunk(stack, name, symbols)
        stack.kill("worker")
        time.sleep(2)
        stack.spawn("worker")
    episode.loads.append(load)
    episode.close()
    episode.heal(deadline=deadline)
    assert_load_finished(stack, name)


def load_db_outage(
    stack: Stack, *, symbols: list[str], start: str, end: str, outage: float,
    deadline: float = 150,
) -> None:  # fmt: skip
    """PostgreSQL crashes for `outage` real seconds while a history load
    is half-way through a chunk."""
    episode = Episode.begin(stack, "load-db-outage")
    name = f"load-{'-'.join(s.replace('/', '') for s in symbols)}"
    load = start_load(stack, name, symbols, start, end)
    wait_mid_chunk(stack, name, symbols)
    stack.postgres.crash()
    time.sleep(outage)
    stack.postgres.start()
    episode.loads.append(load)
    episode.close()
    episode.heal(deadline=deadline)
    assert_load_finished(stack, name)


def wait_live(stack: Stack, *, since: datetime, timeout: float = 90) -> datetime:
    """When the stream worker first streamed after `since`: the end of the
    first minute it stored live (trades of that minute reached it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = stack.query(
            "SELECT min(ts) FROM marketdata_bar WHERE origin = 'live' AND ts >= %s",
            (since.replace(second=0, microsecond=0),),
        )
        if rows and rows[0][0] is not None:
            return rows[0][0] + MINUTE
        time.sleep(0.2)
    raise AssertionError(f"start_streams stored nothing live:\n{stack.tail('streams')}")


# --- history loads ---------------------------------------------------------------
def start_load(
    stack: Stack, name: str, symbols: list[str], start: str, end: str
) -> HistoryLoad:
    """`load_history` as a user runs it: chunks go to the workers, the
    command watches until the job is done."""
    stack.command(
        name, "load_history", "--symbols", ",".join(symbols),
        "--start", start, "--end", end, "--poll", "0.5",
    )  # fmt: skip
    return HistoryLoad(
        symbols=symbols,
        start=datetime.fromisoformat(start).replace(tzinfo=UTC),
        end=datetime.fromisoformat(end).replace(tzinfo=UTC),
    )


def wait_mid_chunk(stack: Stack, name: str, symbols: list[str]) -> None:
    """Until a chunk of the load is half-way: running, some pages stored."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if stack.query(
            """
            SELECT 1 FROM marketdata_loadchunk c
            JOIN marketdata_instrument i ON i.id = c.instrument_id
            WHERE c.state = 'running' AND c.pages >= 1 AND i.symbol = ANY(%s)
            """,
            (symbols,),
        ):
            return
        time.sleep(0.02)
    raise AssertionError(
        f"no chunk of the load was caught half-way:\n{stack.tail(name)}"
    )


def assert_load_finished(stack: Stack, name: str) -> None:
    """The user's command ends by itself, successfully, saying the job is done."""
    process = stack.processes[name]
    deadline = time.monotonic() + 60
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    output = stack.tail(name)
    assert not process.alive(), f"load_history is still watching:\n{output}"
    assert process.popen.returncode == 0, output
    assert " done:" in output, output
