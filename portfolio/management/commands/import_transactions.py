"""`manage.py import_transactions FILE --user U [--skip-bad]`: a CSV of
transactions (format in portfolio/csv_io.py) into a user's positions."""

from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portfolio.csv_io import transactions_parse
from portfolio.services import transactions_import


class Command(BaseCommand):
    help = (
        "Import a CSV of transactions (date,symbol,type,quantity,price,fee,note) "
        "into a user's positions. Any bad line refuses the whole file unless "
        "--skip-bad."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="CSV file, or - for standard input.")
        parser.add_argument("--user", required=True, help="Username that owns them.")
        parser.add_argument(
            "--skip-bad",
            action="store_true",
            help="Import the good lines and skip the bad ones.",
        )

    def handle(self, *args, file: str, user: str, skip_bad: bool, **options) -> None:
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"No user {user!r}.")
        try:
            data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        rows, bad = transactions_parse(data)
        result = transactions_import(owner=owner, rows=rows, bad=bad, skip_bad=skip_bad)
        for line, reason in result.bad:
            self.stderr.write(f"line {line}: {reason}")
        if not result.applied:
            raise CommandError(
                f"{len(result.bad)} bad line(s); nothing imported. Fix them, or "
                "pass --skip-bad to import the other lines."
            )
        skipped = f", {len(result.bad)} bad line(s) skipped" if result.bad else ""
        self.stdout.write(
            f"Imported {result.imported} transaction(s) into "
            f"{len(result.positions)} position(s){skipped}."
        )
