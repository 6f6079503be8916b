"""How a long-running loop logs what keeps going wrong.

A loop that catches an exception and goes on (a stream worker step, the
reclaimer, a simulator tick) reports it to a `RateLimitedLog`: one line that
says what failed and why (the exception's type and the first line of its
text), the traceback as a separate DEBUG record, and per key at most one line
every `every` seconds; the next line says how many repeats were left out.
`recovered(key, ...)` logs one line when a failure that was logged ends, at
its level so that whoever sees one sees the other. Per key the log holds at
most one failure line and one recovery line every `every` seconds, however
fast it flaps. Problems that are not exceptions (an event for a symbol not
subscribed) use the same pacing without `exc`.

A backing service that went away (Redis, the database) is an outage, not a
failure: `core.outage.Outage` also paces the retries and counts what was
skipped meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.outage import duration_text, first_line


def cause(exc: BaseException) -> str:
    """`KeyError: 'AAPL'`: the type and the first line of the text."""
    line = first_line(exc)
    return f"{type(exc).__name__}: {line[:500]}" if line else type(exc).__name__


@dataclass
class _Key:
    logged_at: float = float("-inf")
    left_out: int = 0  # repeats since the last line
    failing_since: float | None = None  # a failure was logged and has not ended
    failures: int = 0  # in the logged failure, for the recovery line
    level: int = logging.WARNING  # of the logged failure


class RateLimitedLog:
    """At most one line per key every `every` seconds, on `logger`."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self.clock = clock
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

    def log(
        self,
        level: int,
        key: str,
        message: str,
        *args: object,
        exc: BaseException | None = None,
    ) -> bool:
        """Log `message % args`, then `: <cause>` when `exc` is given, unless
        `key` had a line in the last `every` seconds. Returns whether it did."""
        with self._lock:
            now = self.clock()
            state = self._keys.setdefault(key, _Key())
            if state.failing_since is not None:
                state.failures += 1
            if now - state.logged_at < self.every:
                state.left_out += 1
                return False
            left_out, state.left_out, state.logged_at = state.left_out, 0, now
            if exc is not None and state.failing_since is None:
                state.failing_since, state.failures = now, 1
                state.level = min(level, logging.WARNING)
        if exc is not None:
            message, args = f"{message}: %s", (*args, cause(exc))
        if left_out:
            message, args = (
                f"{message} (%d more since the last line)",
                (*args, left_out),
            )
        self.logger.log(level, message, *args)
        if exc is not None and self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(f"{message}; traceback:", *args, exc_info=exc)
        return True

    def warning(
        self, key: str, message: str, *args: object, exc: BaseException | None = None
    ) -> bool:
        return self.log(logging.WARNING, key, message, *args, exc=exc)

    def error(
        self, key: str, message: str, *args: object, exc: BaseException | None = None
    ) -> bool:
        return self.log(logging.ERROR, key, message, *args, exc=exc)

    def recovered(self, key: str, message: str, *args: object) -> bool:
        """The work behind `key` succeeded. If a failure of it was logged, log
        `message % args` with how long it failed and how often, at the level
        of that failure (at most WARNING): whoever saw it fail sees it end.
        Cheap when nothing failed: call it after every success."""
        state = self._keys.get(key)
        if state is None or state.failing_since is None:
            return False
        with self._lock:
            since, failures = state.failing_since, state.failures
            if since is None:
                return False
            state.failing_since, state.failures = None, 0
            duration = self.clock() - since
        self.logger.log(
            state.level,
            f"{message} after %s (%d failure%s)",
            *args,
            duration_text(duration),
            failures,
            "" if failures == 1 else "s",
        )
        return True
