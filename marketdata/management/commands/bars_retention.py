"""`manage.py bars_retention`: delete 1-minute bars older than
BAR_RETENTION_DAYS now (the reclaimer does it too), until none is left.

    manage.py bars_retention            # with BAR_RETENTION_DAYS from settings
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from marketdata.retention import bars_retention_apply


class Command(BaseCommand):
    help = "Delete 1-minute bars older than BAR_RETENTION_DAYS (never 1h/1d bars)."

    def handle(self, *args, **options) -> None:
        if not settings.BAR_RETENTION_DAYS:
            self.stdout.write("BAR_RETENTION_DAYS is 0: every minute is kept.")
            return
        total = 0
        while True:
            report = bars_retention_apply(now=timezone.now())
            if report is None:
                self.stdout.write("Another process is applying retention now.")
                return
            total += report.deleted
            if report.complete:
                break
        self.stdout.write(
            f"{total} 1-minute bar(s) before {report.cutoff:%Y-%m-%d %H:%M} UTC "
            "deleted; hourly and daily bars and rollups kept."
        )
