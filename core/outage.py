"""Quiet, cheap handling of a backing service that went away.

Every part that talks to the service reports each attempt to one `Outage`:
`failed(exc, doing=...)` or `succeeded()`. The outage logs one WARNING line
when it starts (naming what failed first and what that means), a reminder at
most every `remind_every` seconds (duration so far, what was skipped), and one
INFO line with its duration when the service answers again. While it is down,
`should_try()` lets one attempt through per `retry_every` seconds, so the
callers skip the service instead of failing on every event; they count what
they skip with `skipped()`, and the reminder and the end line report it.

One `Outage` per service per process (see `core.redis.redis_outage`): every
part of a process that reaches the same Redis shares it, so an outage is one
start line and one end line however many parts notice it. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def first_line(exc: BaseException) -> str:
    """The first line of the exception's text; "" when it has none."""
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def error_text(exc: BaseException) -> str:
    return first_line(exc) or type(exc).__name__


class Outage:
    def __init__(
        self,
        name: str,
        *,
        logger: logging.Logger,
        retry_every: float = 1.0,
        remind_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.logger = logger
        self.retry_every = retry_every
        self.remind_every = remind_every
        self.clock = clock
        self.started_at: float | None = None
        self.last_error = ""
        self.impacts: list[str] = []
        self.skips: Counter[str] = Counter()
        self.outages = 0
        self._tried_at = float("-inf")
        self._reminded_at = 0.0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self.started_at is not None

    @property
    def retry_at(self) -> float:
        """When (on `clock`) the next attempt is allowed while down."""
        return self._tried_at + self.retry_every

    def should_try(self) -> bool:
        """True while the service is up; while it is down, True once per
        `retry_every` seconds (whoever asks first gets the attempt)."""
        if self.started_at is None:
            return True
        with self._lock:
            now = self.clock()
            if now - self._tried_at < self.retry_every:
                return False
            self._tried_at = now
            return True

    def skipped(self, what: str, count: int = 1) -> None:
        """Count work not done because the service is down (`what` is plural:
        "health reports")."""
        with self._lock:
            if self.started_at is not None:
                self.skips[what] += count

    def failed(self, exc: BaseException, *, doing: str, impact: str = "") -> bool:
        """An attempt failed. `doing` names it ("storing snapshots"), `impact`
        says what the caller does meanwhile. Returns whether a line was logged
        (the outage's first failure, or a reminder)."""
        with self._lock:
            now = self.clock()
            self._tried_at = now
            self.last_error = error_text(exc)
            if impact and impact not in self.impacts:
                self.impacts.append(impact)
            if self.started_at is None:
                self.started_at = self._reminded_at = now
                self.outages += 1
                self.logger.warning(
                    "%s is unreachable: %s failed (%s).%s Trying again at most "
                    "once every %s; a reminder every %s.",
                    self.name,
                    doing,
                    self.last_error,
                    f" {impact}." if impact else "",
                    duration_text(self.retry_every),
                    duration_text(self.remind_every),
                )
                return True
            if now - self._reminded_at < self.remind_every:
                return False
            self._reminded_at = now
            self.logger.warning(
                "%s still unreachable after %s (last error: %s)%s.%s",
                self.name,
                duration_text(now - self.started_at),
                self.last_error,
                self._skips_text(),
                "".join(f" {impact}." for impact in self.impacts),
            )
            return True

    def succeeded(self, *, attempted_at: float | None = None) -> bool:
        """An attempt worked. Returns True when that ends an outage (logged).
        An attempt that began (`attempted_at`, on `clock`) before the outage
        did proves nothing: another thread's failure came after it."""
        if self.started_at is None:
            return False
        with self._lock:
            if self.started_at is None:
                return False
            if attempted_at is not None and attempted_at < self.started_at:
                return False
            duration = self.clock() - self.started_at
            self.logger.info(
                "%s reachable again after %s%s.",
                self.name,
                duration_text(duration),
                self._skips_text(),
            )
            self.started_at = None
            self.impacts = []
            self.skips.clear()
            self._tried_at = float("-inf")
            return True

    def _skips_text(self) -> str:
        if not self.skips:
            return ""
        counts = ", ".join(f"{count} {what}" for what, count in self.skips.items())
        return f"; skipped meanwhile: {counts}"
