"""`manage.py audit_retention`: delete audit events older than
AUDIT_RETENTION_DAYS now (the reclaimer does it too), until none is left."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from audit.retention import audit_retention_apply


class Command(BaseCommand):
    help = "Delete audit events older than AUDIT_RETENTION_DAYS."

    def handle(self, *args, **options) -> None:
        if not settings.AUDIT_RETENTION_DAYS:
            self.stdout.write("AUDIT_RETENTION_DAYS is 0: every audit event is kept.")
            return
        total = 0
        while True:
            report = audit_retention_apply(now=timezone.now())
            if report is None:
                self.stdout.write("Another process is applying audit retention now.")
                return
            total += report.deleted
            if report.complete:
                break
        self.stdout.write(
            f"{total} audit event(s) before {report.cutoff:%Y-%m-%d %H:%M} UTC deleted."
        )
