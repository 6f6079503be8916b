"""The reclaimer: a daemon thread in every Dramatiq worker process that runs
the RECLAIM_SERVICES every HISTORY_RECLAIM_EVERY seconds (0 turns it off).

A reclaim service hands out again the work whose message was lost (Redis
restarted empty, a send failed while it was away) or whose worker died
(`marketdata.reclaim.work_reclaim` for history chunks and gap repairs). Each
is a zero-argument callable named by its dotted path, so apps plug in
without `core` importing them; it returns what it did (logged at INFO when
truthy) or raises. The thread survives anything they raise (the database or
Redis away): one log line when a service first fails, a reminder every ten
minutes while it keeps failing, one when it works again (`core.logs`).

`ReclaimMiddleware` is registered in settings' DRAMATIQ_BROKER middleware:
`after_worker_boot` starts the thread, `before_worker_shutdown` stops it.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from django.conf import settings
from django.utils.module_loading import import_string

from core.logs import RateLimitedLog

logger = logging.getLogger(__name__)


class Reclaimer(threading.Thread):
    """One pass of every service each `every` seconds, whatever they raise."""

    def __init__(self, *, services: list[str], every: float) -> None:
        super().__init__(name="tapeline-reclaimer", daemon=True)
        self.services = list(services)
        self.every = every
        self.stopped = threading.Event()
        self.failures = RateLimitedLog(logger, every=600)

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        from django.db import connection

        delay = min(self.every, 5.0)  # soon after boot: a restart is when it matters
        while not self.stopped.wait(delay):
            delay = self.every
            try:
                self.once()
            finally:
                try:
                    connection.close()  # this thread's own; reopened next pass
                except Exception:  # a broken connection is gone anyway
                    pass

    def once(self) -> dict[str, object]:
        """Run every service once; returns what each returned (failures left out)."""
        results = {}
        for path in self.services:
            try:
                result = import_string(path)()
            except Exception as exc:  # outages are waited out
                self.failures.warning(
                    path,
                    "reclaimer: %s failed, tried again every %.0f s",
                    path,
                    self.every,
                    exc=exc,
                )
                continue
            self.failures.recovered(path, "reclaimer: %s working again", path)
            if result:
                logger.info("reclaimer: %s", result)
            results[path] = result
        return results


class ReclaimMiddleware(dramatiq.Middleware):
    """Starts the reclaimer in every worker process."""

    def __init__(self) -> None:
        self.reclaimer: Reclaimer | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker) -> None:
        every = float(settings.HISTORY_RECLAIM_EVERY)
        services = list(settings.RECLAIM_SERVICES)
        if every > 0 and services:
            self.reclaimer = Reclaimer(services=services, every=every)
            self.reclaimer.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker) -> None:
        if self.reclaimer is not None:
            self.reclaimer.stop()
