from __future__ import annotations

from django.core.management.base import BaseCommand

from marketdata.services import instruments_upsert
from marketdata.universe import universe_rows


class Command(BaseCommand):
    help = (
        "Load the shipped instrument universe (US equities, ETFs, crypto). Idempotent."
    )

    def handle(self, *args, **options):
        created, updated = instruments_upsert(rows=universe_rows())
        self.stdout.write(f"Instruments: {created} created, {updated} updated.")
