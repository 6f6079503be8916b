"""Historical bar loading: jobs split into chunks (instrument × month for
minutes, instrument × year for days), each run by one Dramatiq actor call or
in-process with `--sync`.

A chunk claims itself (an atomic UPDATE: duplicate messages are no-ops),
checks coverage (a finished chunk of an earlier job, or every expected bar
already stored, `marketdata.coverage`, means nothing is fetched), pages
through the provider's REST history behind the Redis-shared rate limit,
drops invalid bars (counted, with examples) and stores the rest with COPY +
`INSERT … ON CONFLICT DO NOTHING`, so overlaps and re-runs are harmless.
Progress is written per page (the heartbeat). A transient failure (database,
Redis, provider 5xx/429, network) puts the chunk back in the queue and is
retried with back-off, never recorded as a failure; a worker that dies
leaves a stale heartbeat. `marketdata.reclaim` describes how both end done
without anyone running anything again.

Modules, in import order: `validation` (checks bars before they are stored),
`plan` (plans, sends and closes jobs), `covered` (whether a range needs a fetch,
and `--check-only`), `run` (runs one chunk, and `--sync`), `progress` (reports a
job), `request` and `console` (`load_history`'s options, and running them in a
terminal). Import from this package, not from the modules.
"""

from __future__ import annotations

from marketdata.history.console import LoadConsole
from marketdata.history.covered import (
    chunk_covered,
    coverage_check,
    range_covered,
    stored_coverage,
)
from marketdata.history.plan import (
    CHUNK_MONTHS,
    FINISHED,
    PlannedJob,
    chunk_ranges,
    job_key,
    load_job_enqueue,
    load_job_plan,
    load_jobs_close_finished,
)
from marketdata.history.progress import (
    JobProgress,
    load_job_failures,
    load_job_invalid_examples,
    load_job_progress,
    load_job_summary,
)
from marketdata.history.request import LoadHistoryError, LoadRequest
from marketdata.history.run import (
    MAX_ATTEMPTS,
    SETTLE,
    ChunkOutcome,
    ClaimLost,
    ProviderFactory,
    load_chunk_claim,
    load_chunk_run,
    load_job_run_sync,
    provider_build,
)
from marketdata.history.validation import (
    INVALID_EXAMPLES,
    MAX_PRICE,
    PageResult,
    bar_problem,
    validate_page,
)

__all__ = [
    "CHUNK_MONTHS",
    "FINISHED",
    "INVALID_EXAMPLES",
    "MAX_ATTEMPTS",
    "MAX_PRICE",
    "SETTLE",
    "ChunkOutcome",
    "ClaimLost",
    "JobProgress",
    "LoadConsole",
    "LoadHistoryError",
    "LoadRequest",
    "PageResult",
    "PlannedJob",
    "ProviderFactory",
    "bar_problem",
    "chunk_covered",
    "chunk_ranges",
    "coverage_check",
    "job_key",
    "load_chunk_claim",
    "load_chunk_run",
    "load_job_enqueue",
    "load_job_failures",
    "load_job_invalid_examples",
    "load_job_plan",
    "load_job_progress",
    "load_job_run_sync",
    "load_job_summary",
    "load_jobs_close_finished",
    "provider_build",
    "range_covered",
    "stored_coverage",
    "validate_page",
]
