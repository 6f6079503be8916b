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
this command only watches the database, waiting out database outages (one
line when it goes, one when it is back). Transient failures are retried by
the workers by themselves; Ctrl-C stops watching, not loading; running the
same command again resumes the job (finished chunks are skipped, failed ones
retried).

Past ~400 lines: the outage-aware watcher and its progress drawing should
move into a service (issue 15).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime
from functools import partial

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connection
from django.utils import timezone

from core.logs import cause
from marketdata import history
from marketdata.models import Instrument, Timeframe
from marketdata.providers.routing import history_provider_name
from marketdata.selectors import instruments_in_use
from marketdata.transient import is_transient

DEFAULT_YEARS = 5
IDLE_WARNING = 15.0


def _day(value: str) -> datetime:
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"Not a date (YYYY-MM-DD): {value!r}") from None
    return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)


def _human(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Command(BaseCommand):
    _last_line_key: tuple = ()
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

    # --- argument handling ---------------------------------------------------------
    def _range(self, options) -> tuple[datetime, datetime]:
        now = timezone.now().replace(second=0, microsecond=0)
        if options["year"]:
            if options["start"] or options["end"]:
                raise CommandError("Use --year or --start/--end, not both.")
            start = datetime(options["year"], 1, 1, tzinfo=UTC)
            end = min(datetime(options["year"] + 1, 1, 1, tzinfo=UTC), now)
        else:
            end = _day(options["end"]) if options["end"] else now
            end = min(end, now)
            if options["start"]:
                start = _day(options["start"])
            else:
                today = now.date()
                start = datetime(today.year - DEFAULT_YEARS, today.month, 1, tzinfo=UTC)
        if end <= start:
            raise CommandError("The range is empty: --end must be after --start.")
        return start, end

    def _instruments(self, options) -> list[Instrument]:
        if options["symbols"]:
            wanted = [
                s.strip().upper() for s in options["symbols"].split(",") if s.strip()
            ]
            found = {i.symbol: i for i in Instrument.objects.filter(symbol__in=wanted)}
            missing = [s for s in wanted if s not in found]
            if missing:
                raise CommandError(
                    f"Unknown instrument(s): {', '.join(missing)} "
                    "(seed them with `manage.py seed_instruments` or add them in admin)."
                )
            return [found[s] for s in wanted]
        instruments = list(instruments_in_use().order_by("symbol"))
        if not instruments:
            raise CommandError(
                "No instrument is in any watchlist; pass --symbols AAPL,MSFT or add a watchlist."
            )
        return instruments

    # --- entry point -----------------------------------------------------------------
    def handle(self, *args, **options) -> None:
        provider = options["provider"] or settings.TAPELINE_PROVIDER
        if provider == "csv" or options["file"]:
            return self._handle_csv(options)
        if options["columns"]:
            raise CommandError(
                "--columns maps the columns of a CSV file: use it with "
                "--provider csv --file PATH --symbol SYMBOL."
            )
        timeframe = options["timeframe"] or Timeframe.MINUTE
        if timeframe == Timeframe.HOUR:
            raise CommandError(
                "Hourly bars load from CSV files only (--provider csv --file F "
                "--symbol S); provider loads fetch 1m or 1d, and charts build "
                "hours from minutes."
            )
        start, end = self._range(options)
        instruments = self._instruments(options)

        if options["check_only"]:
            return self._coverage(
                instruments, timeframe, start, end, options["provider"]
            )

        if options["provider"]:
            groups = {provider: instruments}
        else:
            # Crypto may come from its own provider (TAPELINE_CRYPTO_PROVIDER).
            groups: dict[str, list[Instrument]] = {}
            for instrument in instruments:
                name = history_provider_name(instrument=instrument)
                groups.setdefault(name, []).append(instrument)
        jobs = []
        for name, members in groups.items():
            try:
                planned = history.load_job_plan(
                    instruments=members,
                    provider=name,
                    timeframe=timeframe,
                    start=start,
                    end=end,
                    options={"sync": options["sync"]},
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            job = planned.job
            verb = "Resuming" if planned.resumed else "Created"
            self.stdout.write(
                f"{verb} load job #{job.id}: {len(members)} instrument(s), "
                f"{timeframe} bars {start:%Y-%m-%d} → {end:%Y-%m-%d %H:%M} UTC from {name}; "
                f"{job.chunks.count()} chunks, {len(planned.to_run)} to run."
            )
            if not options["sync"]:
                history.load_job_enqueue(chunk_ids=planned.to_run)
                hint = (
                    f" ({options['workers']} worker(s))" if options["workers"] else ""
                )
                self.stdout.write(
                    f"Enqueued {len(planned.to_run)} chunk(s) for the workers{hint}: "
                    "`python manage.py rundramatiq` must be running."
                )
            jobs.append((job, planned.to_run))

        if options["sync"]:
            for job, to_run in jobs:
                self._run_sync(job, to_run, options)
        elif options["no_wait"]:
            return
        else:
            for job, _ in jobs:
                if not self._watch(job, options["poll"]):
                    return
        failed = sum(self._patiently(partial(self._summary, job)) for job, _ in jobs)
        if failed:
            raise CommandError(
                f"{failed} chunk(s) failed; run the same command again to retry them."
            )

    # --- database outages ---------------------------------------------------------------
    _down_since: float | None = None

    def _patiently(self, read, *, poll: float = 1.0):
        """`read()`, waiting out database (and Redis) outages with one
        line when it goes and one when it is back."""
        while True:
            try:
                result = read()
            except Exception as exc:  # only outages are waited out
                if not is_transient(exc):
                    raise
                self._outage(exc)
                # Drop the connection the outage broke (never a caller's
                # transaction): the next try reconnects.
                if not connection.in_atomic_block:
                    close_old_connections()
                time.sleep(poll)
                continue
            if self._down_since is not None:
                self.stdout.write(
                    f"back after {time.monotonic() - self._down_since:.0f} s"
                )
                self._down_since = None
            return result

    def _outage(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.stdout.write("")
            self.stdout.write(
                self.style.WARNING(f"database unreachable, waiting… ({cause(exc)})")
            )

    # --- running and watching -----------------------------------------------------------
    def _run_sync(self, job, chunk_ids: list[int], options) -> None:
        started = time.monotonic()

        def progress_of():
            return history.load_job_progress(job_id=job.id)

        base = self._patiently(progress_of)

        def on_chunk(outcome) -> None:
            if outcome.retry:
                self.stdout.write("")
                self.stdout.write(
                    self.style.WARNING(f"{outcome.error}: retrying after a back-off")
                )
                return
            self._draw(self._patiently(progress_of), base, started)

        try:
            history.load_job_run_sync(job=job, chunk_ids=chunk_ids, on_chunk=on_chunk)
        except KeyboardInterrupt:
            self.stdout.write("")
            raise CommandError(
                f"Interrupted. Job #{job.id} is saved: run the same command again to resume."
            ) from None
        self._draw(self._patiently(progress_of), base, started, final=True)

    def _watch(self, job, poll: float) -> bool:
        started = time.monotonic()

        def progress_of():
            return history.load_job_progress(job_id=job.id)

        warned = False
        try:
            base = self._patiently(progress_of, poll=poll)
            while True:
                progress = self._patiently(progress_of, poll=poll)
                if progress.complete:
                    self._draw(progress, base, started, final=True)
                    return True
                self._draw(progress, base, started)
                idle = (
                    progress.running == 0
                    and progress.finished == base.finished
                    and progress.bars_received == base.bars_received
                )
                if idle and not warned and time.monotonic() - started > IDLE_WARNING:
                    warned = True
                    self.stdout.write("")
                    self.stdout.write(
                        self.style.WARNING(
                            f"No worker has started a chunk in {IDLE_WARNING:.0f} s: is "
                            "`python manage.py rundramatiq` running on this Redis "
                            "(REDIS_URL)? The chunks stay queued; or use --sync."
                        )
                    )
                time.sleep(poll)
        except KeyboardInterrupt:
            self.stdout.write("")
            self.stdout.write(
                f"Stopped watching. Job #{job.id} keeps running in the workers; watch it "
                "in admin (Load jobs) or run the same command again to follow/resume it."
            )
            return False

    def _draw(self, progress, base, started: float, final: bool = False) -> None:
        elapsed = max(1e-6, time.monotonic() - started)
        added = progress.bars_added - base.bars_added
        rate = added / elapsed
        done_now = progress.finished - base.finished
        remaining = progress.chunks - progress.finished
        eta = elapsed / done_now * remaining if done_now else float("nan")
        width = 30
        filled = (
            int(width * progress.finished / progress.chunks)
            if progress.chunks
            else width
        )
        bar = "#" * filled + "-" * (width - filled)
        eta_text = "—" if eta != eta else _duration(eta)
        line = (
            f"[{bar}] {progress.finished}/{progress.chunks} chunks  "
            f"{_human(progress.bars_added)} bars ({_human(rate)}/s)  "
            f"ETA {eta_text}  failed {progress.failed}"
        )
        tty = getattr(self.stdout, "isatty", lambda: False)()
        if tty:
            self.stdout.write("\r" + line, ending="\n" if final else "")
            self.stdout.flush()
        else:
            # Logs and pipes: a line per 5 % of the chunks, or every 10 seconds.
            step = max(1, progress.chunks // 20)
            key = (progress.finished // step, int(elapsed) // 10)
            if final or key != self._last_line_key:
                self._last_line_key = key
                self.stdout.write(line)

    def _summary(self, job) -> int:
        progress = history.load_job_progress(job_id=job.id)
        rows = history.load_job_summary(job_id=job.id)
        self.stdout.write("")
        header = f"{'symbol':<10} {'bars added':>12} {'invalid':>8} {'chunks':>7} {'skipped':>8} {'failed':>7} {'years':>6} {'time':>8}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in rows:
            self.stdout.write(
                f"{row['symbol']:<10} {row['bars_added']:>12,} {row['invalid_bars']:>8,} "
                f"{row['chunks']:>7} {row['skipped']:>8} {row['failed']:>7} "
                f"{row['years']:>6.2f} {_duration(row['seconds']):>8}"
            )
        self.stdout.write(
            f"Job #{job.id} {progress.state}: {progress.bars_added:,} bars added, "
            f"{progress.invalid_bars:,} invalid bars dropped, "
            f"{progress.skipped} chunk(s) already covered, {progress.failed} failed."
        )
        for symbol, example in history.load_job_invalid_examples(job_id=job.id):
            self.stdout.write(
                f"  invalid {symbol} {example['ts']}: {example['problem']} "
                f"(o/h/l/c/v {' '.join(example['ohlcv'])})"
            )
        failures = history.load_job_failures(job_id=job.id)
        for chunk in failures:
            self.stdout.write(
                self.style.ERROR(
                    f"  failed {chunk.instrument.symbol} {chunk.start:%Y-%m-%d}…"
                    f"{chunk.end:%Y-%m-%d}: {chunk.error}"
                )
            )
        return progress.failed

    def _coverage(self, instruments, timeframe, start, end, provider) -> None:
        rows = history.coverage_check(
            instruments=instruments,
            timeframe=timeframe,
            start=start,
            end=end,
            provider=provider,
        )
        self.stdout.write(
            f"Coverage of {timeframe} bars {start:%Y-%m-%d} → {end:%Y-%m-%d} (nothing downloaded):"
        )
        header = f"{'symbol':<10} {'stored':>10} {'expected':>10} {'coverage':>9} {'chunks covered':>15}  first → last"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in rows:
            span = (
                f"{row['first']:%Y-%m-%d %H:%M} → {row['last']:%Y-%m-%d %H:%M}"
                if row["first"]
                else "—"
            )
            self.stdout.write(
                f"{row['symbol']:<10} {row['stored']:>10,} {row['expected']:>10,} "
                f"{row['coverage']:>8.1f}% {row['chunks_covered']:>7}/{row['chunks']:<7}  {span}"
            )

    # --- CSV files --------------------------------------------------------------------
    def _handle_csv(self, options) -> None:
        from marketdata.csv_load import CsvLoadError, csv_load
        from marketdata.providers.csv_layout import column_mapping_parse
        from marketdata.providers.csv_parse import CsvFormatError

        if not options["file"] or not options["symbol"]:
            raise CommandError("--provider csv needs --file PATH and --symbol SYMBOL.")
        columns = None
        if options["columns"] is not None:
            try:
                columns = column_mapping_parse(options["columns"])
            except CsvFormatError as exc:
                raise CommandError(str(exc)) from None
        instrument = Instrument.objects.filter(
            symbol=options["symbol"].strip().upper()
        ).first()
        if instrument is None:
            raise CommandError(f"Unknown instrument {options['symbol']!r}.")
        try:
            result = csv_load(
                path=options["file"],
                instrument=instrument,
                timeframe=options["timeframe"],
                skip_bad=options["skip_bad"],
                timezone_name=options["timezone"],
                encoding=options["encoding"],
                columns=columns,
            )
        except CsvLoadError as exc:
            for problem in exc.problems[:50]:
                self.stderr.write(f"  {problem}")
            if len(exc.problems) > 50:
                self.stderr.write(f"  … and {len(exc.problems) - 50} more")
            raise CommandError(str(exc)) from None
        for problem in result.problems[:50]:
            self.stderr.write(f"  skipped {problem}")
        self.stdout.write(
            f"{instrument.symbol}: {result.rows_read:,} rows read, {result.bars_added:,} bars added, "
            f"{result.skipped:,} bad rows skipped, {result.invalid:,} invalid bars dropped "
            f"({result.first or '—'} → {result.last or '—'})."
        )
        sys.stdout.flush()
