"""`manage.py load_history` in a terminal: `LoadConsole.run(request)` plans
the jobs, sends their chunks to the workers (or runs them here with
`--sync`), watches them with a progress line, and prints the summary; also
`--check-only`'s coverage table and CSV file loads.

Watching only reads the database and waits out its outages (one line when it
goes, one when it is back): the workers retry transient failures by
themselves, Ctrl-C stops watching, not loading, and running the same command
again resumes the job.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from django.db import close_old_connections, connection

from core.logs import cause
from marketdata.history.covered import coverage_check
from marketdata.history.plan import load_job_enqueue, load_job_plan
from marketdata.history.progress import (
    JobProgress,
    load_job_failures,
    load_job_invalid_examples,
    load_job_progress,
    load_job_summary,
)
from marketdata.history.request import (
    LoadHistoryError,
    LoadRequest,
    load_instruments,
    load_range,
    provider_groups,
)
from marketdata.history.run import load_job_run_sync
from marketdata.models import Instrument
from marketdata.transient import is_transient

#: Seconds without a started chunk before the watcher asks whether a worker runs.
IDLE_WARNING = 15.0
#: Problems of a CSV file printed before "… and N more".
CSV_PROBLEMS_SHOWN = 50

T = TypeVar("T")


def human(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class LoadConsole:
    """Runs one request, writing to a command's `stdout`/`stderr` with its
    `style`. Raises `LoadHistoryError` when the load cannot start or ends with
    failed chunks."""

    def __init__(self, *, stdout, stderr, style) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.style = style
        self._down_since: float | None = None
        self._last_line_key: tuple = ()

    def run(self, request: LoadRequest) -> None:
        if request.is_csv:
            return self.csv(request)
        timeframe = request.bars_timeframe()
        start, end = load_range(request)
        instruments = load_instruments(request)
        if request.check_only:
            return self.coverage(
                instruments, timeframe, start, end, provider=request.provider
            )
        jobs = []
        for name, members in provider_groups(request, instruments).items():
            try:
                planned = load_job_plan(
                    instruments=members,
                    provider=name,
                    timeframe=timeframe,
                    start=start,
                    end=end,
                    options={"sync": request.sync},
                )
            except ValueError as exc:
                raise LoadHistoryError(str(exc)) from None
            job = planned.job
            verb = "Resuming" if planned.resumed else "Created"
            self.stdout.write(
                f"{verb} load job #{job.id}: {len(members)} instrument(s), "
                f"{timeframe} bars {start:%Y-%m-%d} → {end:%Y-%m-%d %H:%M} UTC "
                f"from {name}; {job.chunks.count()} chunks, "
                f"{len(planned.to_run)} to run."
            )
            if not request.sync:
                load_job_enqueue(chunk_ids=planned.to_run)
                hint = f" ({request.workers} worker(s))" if request.workers else ""
                self.stdout.write(
                    f"Enqueued {len(planned.to_run)} chunk(s) for the workers{hint}: "
                    "`python manage.py rundramatiq` must be running."
                )
            jobs.append((job, planned.to_run))

        if request.sync:
            for job, to_run in jobs:
                self.run_sync(job, to_run)
        elif request.no_wait:
            return
        else:
            for job, _ in jobs:
                if not self.watch(job, request.poll):
                    return
        failed = sum(
            self.patiently(lambda job=job: self.summary(job)) for job, _ in jobs
        )
        if failed:
            raise LoadHistoryError(
                f"{failed} chunk(s) failed; run the same command again to retry them."
            )

    # --- database outages -------------------------------------------------------
    def patiently(self, read: Callable[[], T], *, poll: float = 1.0) -> T:
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

    # --- running and watching ---------------------------------------------------
    def run_sync(self, job, chunk_ids: list[int]) -> None:
        """Run the chunks in this process, drawing progress after each."""
        started = time.monotonic()

        def progress_of() -> JobProgress:
            return load_job_progress(job_id=job.id)

        base = self.patiently(progress_of)

        def on_chunk(outcome) -> None:
            if outcome.retry:
                self.stdout.write("")
                self.stdout.write(
                    self.style.WARNING(f"{outcome.error}: retrying after a back-off")
                )
                return
            self.draw(self.patiently(progress_of), base, started)

        try:
            load_job_run_sync(job=job, chunk_ids=chunk_ids, on_chunk=on_chunk)
        except KeyboardInterrupt:
            self.stdout.write("")
            raise LoadHistoryError(
                f"Interrupted. Job #{job.id} is saved: run the same command again "
                "to resume."
            ) from None
        self.draw(self.patiently(progress_of), base, started, final=True)

    def watch(self, job, poll: float) -> bool:
        """Follow a job the workers run until it is complete (True) or
        Ctrl-C (False)."""
        started = time.monotonic()

        def progress_of() -> JobProgress:
            return load_job_progress(job_id=job.id)

        warned = False
        try:
            base = self.patiently(progress_of, poll=poll)
            while True:
                progress = self.patiently(progress_of, poll=poll)
                if progress.complete:
                    self.draw(progress, base, started, final=True)
                    return True
                self.draw(progress, base, started)
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
                            f"No worker has started a chunk in {IDLE_WARNING:.0f} s: "
                            "is `python manage.py rundramatiq` running on this Redis "
                            "(REDIS_URL)? The chunks stay queued; or use --sync."
                        )
                    )
                time.sleep(poll)
        except KeyboardInterrupt:
            self.stdout.write("")
            self.stdout.write(
                f"Stopped watching. Job #{job.id} keeps running in the workers; "
                "watch it in admin (Load jobs) or run the same command again to "
                "follow/resume it."
            )
            return False

    def draw(
        self, progress: JobProgress, base: JobProgress, started: float, final=False
    ) -> None:
        """The progress line: redrawn in place on a terminal; in logs and
        pipes, a line per 5 % of the chunks or every 10 seconds."""
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
        eta_text = "—" if eta != eta else duration(eta)
        line = (
            f"[{bar}] {progress.finished}/{progress.chunks} chunks  "
            f"{human(progress.bars_added)} bars ({human(rate)}/s)  "
            f"ETA {eta_text}  failed {progress.failed}"
        )
        tty = getattr(self.stdout, "isatty", lambda: False)()
        if tty:
            self.stdout.write("\r" + line, ending="\n" if final else "")
            self.stdout.flush()
        else:
            step = max(1, progress.chunks // 20)
            key = (progress.finished // step, int(elapsed) // 10)
            if final or key != self._last_line_key:
                self._last_line_key = key
                self.stdout.write(line)

    # --- reports ----------------------------------------------------------------
    def summary(self, job) -> int:
        """The per-symbol table, invalid-bar examples and failed chunks of a
        job; returns how many chunks failed."""
        progress = load_job_progress(job_id=job.id)
        rows = load_job_summary(job_id=job.id)
        self.stdout.write("")
        header = (
            f"{'symbol':<10} {'bars added':>12} {'invalid':>8} {'chunks':>7} "
            f"{'skipped':>8} {'failed':>7} {'years':>6} {'time':>8}"
        )
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in rows:
            self.stdout.write(
                f"{row['symbol']:<10} {row['bars_added']:>12,} "
                f"{row['invalid_bars']:>8,} {row['chunks']:>7} {row['skipped']:>8} "
                f"{row['failed']:>7} {row['years']:>6.2f} "
                f"{duration(row['seconds']):>8}"
            )
        self.stdout.write(
            f"Job #{job.id} {progress.state}: {progress.bars_added:,} bars added, "
            f"{progress.invalid_bars:,} invalid bars dropped, "
            f"{progress.skipped} chunk(s) already covered, {progress.failed} failed."
        )
        for symbol, example in load_job_invalid_examples(job_id=job.id):
            self.stdout.write(
                f"  invalid {symbol} {example['ts']}: {example['problem']} "
                f"(o/h/l/c/v {' '.join(example['ohlcv'])})"
            )
        for chunk in load_job_failures(job_id=job.id):
            self.stdout.write(
                self.style.ERROR(
                    f"  failed {chunk.instrument.symbol} {chunk.start:%Y-%m-%d}…"
                    f"{chunk.end:%Y-%m-%d}: {chunk.error}"
                )
            )
        return progress.failed

    def coverage(
        self,
        instruments: list[Instrument],
        timeframe: str,
        start: datetime,
        end: datetime,
        *,
        provider: str | None,
    ) -> None:
        """`--check-only`: stored against expected bars, nothing downloaded."""
        rows = coverage_check(
            instruments=instruments,
            timeframe=timeframe,
            start=start,
            end=end,
            provider=provider,
        )
        self.stdout.write(
            f"Coverage of {timeframe} bars {start:%Y-%m-%d} → {end:%Y-%m-%d} "
            "(nothing downloaded):"
        )
        header = (
            f"{'symbol':<10} {'stored':>10} {'expected':>10} {'coverage':>9} "
            f"{'chunks covered':>15}  first → last"
        )
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
                f"{row['coverage']:>8.1f}% "
                f"{row['chunks_covered']:>7}/{row['chunks']:<7}  {span}"
            )

    # --- CSV files --------------------------------------------------------------
    def csv(self, request: LoadRequest) -> None:
        """`--provider csv --file F --symbol S`: load one file here."""
        from marketdata.csv_load import CsvLoadError, csv_load
        from marketdata.providers.csv_layout import column_mapping_parse
        from marketdata.providers.csv_parse import CsvFormatError

        if not request.file or not request.symbol:
            raise LoadHistoryError(
                "--provider csv needs --file PATH and --symbol SYMBOL."
            )
        columns = None
        if request.columns is not None:
            try:
                columns = column_mapping_parse(request.columns)
            except CsvFormatError as exc:
                raise LoadHistoryError(str(exc)) from None
        symbol = request.symbol.strip().upper()
        instrument = Instrument.objects.filter(symbol=symbol).first()
        if instrument is None:
            raise LoadHistoryError(f"Unknown instrument {request.symbol!r}.")
        try:
            result = csv_load(
                path=request.file,
                instrument=instrument,
                timeframe=request.timeframe,
                skip_bad=request.skip_bad,
                timezone_name=request.timezone,
                encoding=request.encoding,
                columns=columns,
            )
        except CsvLoadError as exc:
            for problem in exc.problems[:CSV_PROBLEMS_SHOWN]:
                self.stderr.write(f"  {problem}")
            if len(exc.problems) > CSV_PROBLEMS_SHOWN:
                more = len(exc.problems) - CSV_PROBLEMS_SHOWN
                self.stderr.write(f"  … and {more} more")
            raise LoadHistoryError(str(exc)) from None
        for problem in result.problems[:CSV_PROBLEMS_SHOWN]:
            self.stderr.write(f"  skipped {problem}")
        self.stdout.write(
            f"{instrument.symbol}: {result.rows_read:,} rows read, "
            f"{result.bars_added:,} bars added, {result.skipped:,} bad rows "
            f"skipped, {result.invalid:,} invalid bars dropped "
            f"({result.first or '—'} → {result.last or '—'})."
        )
        sys.stdout.flush()
