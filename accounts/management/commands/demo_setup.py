"""`manage.py demo_setup`: the demo login, its watchlists, positions and alert
rules (`marketdata.demo`, `alerts.demo`). The price alert rules are placed
around the price now, asked of the provider (a temporary simulator when the
demo's own is not running yet). In `accounts`, the app above both it sets up
(the import-linter layers in `pyproject.toml`)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from alerts.demo import demo_alert_rules_seed
from marketdata.demo import demo_setup, simulator_answering


class Command(BaseCommand):
    help = "Create the demo login with default watchlists, positions and alert rules."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="tapeline-demo")

    def handle(self, *args, username, password, **options):
        user, created = demo_setup(username=username, password=password)
        state = "created" if created else "ready"
        self.stdout.write(f"Demo user {username!r} {state}.")
        with simulator_answering():
            rules = demo_alert_rules_seed(user=user)
        for rule in rules:
            self.stdout.write(f"  alert rule: {rule}")
