"""Loading one CSV file of bars (`load_history --provider csv`).

The file is validated completely first (H1's `CsvProvider`): a bad row is
reported with its line number and nothing is loaded, unless `skip_bad`, which
loads the good rows and lists the bad ones. The load itself is a one-chunk
load job, so it shows in admin and on the status page like any other, and
goes through the same validation and idempotent COPY path (origin "file").

The timeframe is detected from the file (1m, 1h or 1d); a requested
`timeframe` must match it. Hourly files are stored as "1h" bars, which charts
use where no minutes exist (`marketdata.rollups`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction

from marketdata.history import job_key, load_chunk_run
from marketdata.models import ChunkState, Instrument, JobState, LoadChunk, LoadJob
from marketdata.providers.base import ProviderError
from marketdata.rollups import STEPS


class CsvLoadError(Exception):
    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass
class CsvLoadResult:
    job_id: int
    timeframe: str
    rows_read: int
    bars_added: int
    skipped: int
    invalid: int
    first: datetime | None
    last: datetime | None
    problems: list[str] = field(default_factory=list)


def csv_load(
    *,
    path: str,
    instrument: Instrument,
    timeframe: str | None = None,
    skip_bad: bool = False,
    timezone_name: str | None = None,
    encoding: str | None = None,
    columns: dict[str, str] | None = None,
) -> CsvLoadResult:
    """Validate and load `path` into `instrument`'s bars; `columns` (field ->
    header name, see `csv_layout.column_mapping_parse`) names columns the
    header's names do not give away."""
    from marketdata.providers.csv_files import CsvFormatError, CsvProvider

    if not os.path.isfile(path):
        raise CsvLoadError(f"{path}: no such file")
    try:
        provider = CsvProvider(
            path=path,
            timezone=timezone_name,
            skip_bad=skip_bad,
            timeframe=timeframe,
            encoding=encoding,
            columns=columns,
        )
        summary = provider.validate()
    except CsvFormatError as exc:
        raise CsvLoadError(str(exc), problems=[str(b) for b in exc.bad_rows]) from None
    except ProviderError as exc:
        raise CsvLoadError(str(exc)) from None
    timeframe = summary.timeframe
    start = summary.first_ts
    end = summary.last_ts + STEPS[timeframe]
    stat = os.stat(path)
    fingerprint = hashlib.sha256(
        f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    with transaction.atomic():
        job = LoadJob.objects.create(
            key=job_key(
                provider="csv",
                timeframe=timeframe,
                start=start,
                end=end,
                symbols=[instrument.symbol, fingerprint],
            ),
            provider="csv",
            timeframe=timeframe,
            start=start,
            end=end,
            symbols=[instrument.symbol],
            options={
                "file": os.path.abspath(path),
                "skip_bad": skip_bad,
                **({"encoding": encoding} if encoding else {}),
                **({"columns": columns} if columns else {}),
            },
            state=JobState.RUNNING,
        )
        chunk = LoadChunk.objects.create(
            job=job,
            instrument=instrument,
            timeframe=timeframe,
            start=start,
            end=end,
            state=ChunkState.QUEUED,
        )
    outcome = load_chunk_run(
        chunk_id=chunk.id,
        provider_factory=lambda _name, _instrument: provider,
        check_coverage=False,
    )
    if outcome.state != ChunkState.DONE:
        raise CsvLoadError(f"{path}: load failed: {outcome.error}")
    return CsvLoadResult(
        job_id=job.id,
        timeframe=timeframe,
        rows_read=summary.rows,
        bars_added=outcome.bars_added,
        skipped=len(summary.bad_rows),
        invalid=outcome.invalid,
        first=summary.first_ts,
        last=summary.last_ts,
        problems=[str(b) for b in summary.bad_rows],
    )
