"""`manage.py demo_history`: recent minute bars for the demo watchlists.

When the configured provider is the built-in simulator and none is answering
on its port yet, a temporary one serves the load in this process and stops
afterwards, so `make demo` needs no other process running.
"""

from __future__ import annotations

import socket
from datetime import timedelta

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class Command(BaseCommand):
    help = "Load recent history for every watchlist instrument (the demo's charts)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=10)

    def handle(self, *args, days: int, **options):
        simulator = None
        if settings.TAPELINE_PROVIDER == "simulator" and not _port_open(
            settings.SIMULATOR_HOST, settings.SIMULATOR_PORT
        ):
            from marketdata.simulator.server import Simulator

            simulator = Simulator(
                host=settings.SIMULATOR_HOST,
                port=settings.SIMULATOR_PORT,
                seed=settings.SIMULATOR_SEED,
                hours="always",
            ).start_in_thread()
        start = (timezone.now() - timedelta(days=days)).date().isoformat()
        try:
            call_command("load_history", "--sync", "--start", start, stdout=self.stdout)
        finally:
            if simulator is not None:
                simulator.stop_thread()
