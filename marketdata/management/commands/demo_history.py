"""`manage.py demo_history`: recent minute bars for the demo watchlists.

When the configured provider is the built-in simulator and none is answering
on its port yet, a temporary one serves the load in this process and stops
afterwards (`marketdata.demo.simulator_answering`), so `make demo` needs no
other process running.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from marketdata.demo import simulator_answering


class Command(BaseCommand):
    help = "Load recent history for every watchlist instrument (the demo's charts)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=10)

    def handle(self, *args, days: int, **options):
        start = (timezone.now() - timedelta(days=days)).date().isoformat()
        with simulator_answering():
            call_command("load_history", "--sync", "--start", start, stdout=self.stdout)
