from __future__ import annotations

from django.core.management.base import BaseCommand

from marketdata.demo import demo_setup


class Command(BaseCommand):
    help = "Create the demo login with default watchlists and positions."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="tapeline-demo")

    def handle(self, *args, username, password, **options):
        _, created = demo_setup(username=username, password=password)
        state = "created" if created else "ready"
        self.stdout.write(f"Demo user {username!r} {state}.")
