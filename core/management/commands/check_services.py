from __future__ import annotations

from django.core.management.base import BaseCommand

from core.services_check import services_check


class Command(BaseCommand):
    help = "Check that PostgreSQL and Redis answer; one clear line when they do not."

    def handle(self, *args, **options):
        services_check()
        self.stdout.write("PostgreSQL and Redis are reachable.")
