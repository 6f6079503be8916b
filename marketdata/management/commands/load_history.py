"""`manage.py load_history`: load historical bars through Dramatiq workers.

    manage.py load_history                      # every watchlist instrument, 5 years of 1m
    manage.py load_history --symbols AAPL,BTC/USD --year 2024
    manage.py load_history --timeframe 1d --start 2015-01-01
    manage.py load_history --check-only         # coverage report, nothing fetched
    manage.py load_history --sync               # no worker: run the chunks here
    manage.py load_history --provider csv --file bars.csv --symbol AAPL [--skip-bad]
        [--timeframe 1m|1h|1d]  # detected from the file; checked when given
        [--encoding latin-1]    # when not UTF-8 / UTF-16 with a byte-order mark
        [--columns time=Datum,open=Erster,high=Hoch,low=Tief,close=Schluss]

Without `--sync` the chunks go to the workers (`manage.py rundramatiq`) and
this command only watches the database. The command parses; checking the
options, planning, watching and the reports are `marketdata.history`'s
`LoadRequest` and `LoadConsole`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketdata.history import LoadConsole, LoadHistoryError, LoadRequest
from marketdata.models import Timeframe


class Command(BaseCommand):
    help = "Load historical bars (1m or 1d) for instruments, in chunks run by Dramatiq workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--symbols",
            help="Comma-separated symbols (default: every watchlist instrument).",
        )
        parser.add_argument(
            "--start", help="First day, YYYY-MM-DD (default: 5 years ago)."
        )
        parser.add_argument(
            "--end", help="Day after the last, YYYY-MM-DD (default: now)."
        )
        parser.add_argument("--year", type=int, help="Load one calendar year.")
        parser.add_argument(
            "--timeframe",
            choices=[t.value for t in Timeframe],
            help="1m (default), 1h or 1d. Providers load 1m or 1d; 1h loads from "
            "CSV files only (--provider csv), whose bar size (1m, 1h or 1d) is "
            "detected from the rows and checked against this when given.",
        )
        parser.add_argument(
            "--provider",
            help=f"Provider (default: {settings.TAPELINE_PROVIDER}); csv for files.",
        )
        parser.add_argument("--file", help="CSV file (with --provider csv).")
        parser.add_argument("--symbol", help="Instrument of the CSV file.")
        parser.add_argument(
            "--skip-bad",
            action="store_true",
            help="CSV: load the good rows of a file with bad ones.",
        )
        parser.add_argument(
            "--timezone",
            help="CSV: zone of timestamps without an offset (default America/New_York).",
        )
        parser.add_argument(
            "--encoding",
            help="CSV: the file's text encoding when it is not UTF-8 or UTF-16 "
            "with a byte-order mark, e.g. latin-1 or cp1252.",
        )
        parser.add_argument(
            "--columns",
            help="CSV: which column holds what, for headers Tapeline does not "
            "recognize, e.g. time=Date,open=Open,high=High,low=Low,close=Close,"
            "volume=Volume (targets: time, date, open, high, low, close, volume, "
            "vwap, trades; date plus time for separate date and clock columns; "
            "unnamed targets are still found by their usual names).",
        )
        parser.add_argument(
            "--check-only",
            action="store_true",
            help="Report coverage, download nothing.",
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Run the chunks in this process (no worker).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=0,
            help="Workers you run (only sizes the hint).",
        )
        parser.add_argument(
            "--poll", type=float, default=1.0, help="Seconds between progress updates."
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="Enqueue and return without watching.",
        )

    def handle(self, *args, **options) -> None:
        console = LoadConsole(stdout=self.stdout, stderr=self.stderr, style=self.style)
        try:
            console.run(LoadRequest.from_options(options))
        except LoadHistoryError as exc:
            raise CommandError(str(exc)) from None
