from __future__ import annotations

import psycopg
from django.core.management.base import BaseCommand

from core.database import database_ensure
from core.services_check import ServiceUnavailable, database_error_message


class Command(BaseCommand):
    help = "Create the configured PostgreSQL database if it does not exist."

    def handle(self, *args, **options):
        try:
            created = database_ensure()
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(database_error_message(exc)) from exc
        self.stdout.write("Database created." if created else "Database exists.")
