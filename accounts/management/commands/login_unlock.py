from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.throttle import login_unlock
from core.redis import REDIS_ERRORS


class Command(BaseCommand):
    help = "Lift the login lock (and failure count) of a username and/or an address."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="")
        parser.add_argument("--ip", default="")

    def handle(self, *args, username: str, ip: str, **options):
        if not username and not ip:
            raise CommandError("Give --username NAME and/or --ip ADDRESS.")
        try:
            cleared = login_unlock(username=username, ip=ip)
        except REDIS_ERRORS as exc:
            raise CommandError(f"Redis is not reachable: {exc}") from exc
        what = " and ".join(
            f"{label} {value!r}"
            for label, value in (("username", username), ("address", ip))
            if value
        )
        if cleared:
            self.stdout.write(f"Unlocked {what}.")
        else:
            self.stdout.write(f"Nothing held {what}: it was not locked.")
