"""Reads for the stream worker and for pages that show its state.

`feed_status_get()` is what the status page, the `feed.status` group and the
`/metrics` endpoint show. Its document:

    {
      "updated_at": "2024-05-01T14:30:02+00:00",
      "ok": true,                # some worker alive and all its connections live
      "workers": [ <worker health, see streaming.health>, ... ],
      "connections": [ <connection health + "worker": worker id>, ... ],
    }

Worker health documents live in the Redis hash `<namespace>:streams:health`
(`health_key()`; field = worker id, value = JSON), written every 2 s by each
`start_streams` process of this installation; a worker whose document is
older than `HEALTH_STALE_AFTER` seconds shows `"alive": false` (stopped or
stuck). Workers that stopped cleanly drop out after 5 minutes, vanished ones
after `STREAM_WORKER_FORGET` seconds (a day by default), and their documents
are then deleted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache

import orjson
from django.conf import settings

from core.redis import REDIS_ERRORS, key, redis_client, redis_outage

HEALTH_STALE_AFTER = 10.0
# A worker that stopped cleanly stays listed for a few minutes; one that
# vanished without saying so for `STREAM_WORKER_FORGET` seconds.
STOPPED_FORGET_AFTER = 300.0


def health_key() -> str:
    """The hash of this installation's stream-worker health documents."""
    return key("streams", "health")


def feed_status_get() -> dict:
    """Every stream worker's last health report, merged (one Redis read);
    documents of workers forgotten by now are deleted."""
    now = time.time()
    forget_after = float(settings.STREAM_WORKER_FORGET)
    client = redis_client()
    raw = client.hgetall(health_key())
    workers, forgotten = [], []
    for field, value in raw.items():
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError:
            forgotten.append(field)
            continue
        age = now - float(document.get("reported_at") or 0)
        stopped = document.get("state") == "stopped"
        if age > forget_after or (
            stopped and age > min(STOPPED_FORGET_AFTER, forget_after)
        ):
            forgotten.append(field)
            continue
        document["age_s"] = round(age, 1)
        document["alive"] = (
            age <= HEALTH_STALE_AFTER and document.get("state") == "running"
        )
        workers.append(document)
    if forgotten:
        # A worker restarted under the same id in between writes again within
        # 2 s: deleting its fresh document costs one report, nothing more.
        client.hdel(health_key(), *forgotten)
    workers.sort(key=lambda w: (w.get("shard") or "", w.get("id") or ""))
    connections = [
        {**connection, "worker": worker.get("id"), "worker_alive": worker["alive"]}
        for worker in workers
        for connection in worker.get("connections", [])
    ]
    alive = [w for w in workers if w["alive"]]
    ok = bool(alive) and all(
        c.get("state") == "live" for w in alive for c in w.get("connections", [])
    )
    return {
        "updated_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "ok": ok,
        "workers": workers,
        "connections": connections,
    }


def instruments_to_stream(
    *, extra_symbols: set[str] | frozenset[str] = frozenset()
) -> list[dict]:
    """Active instruments in any watchlist or position, plus `extra_symbols`
    (those with active alert rules), with what ranks them for a plan's symbol
    budget (`streaming.budget`): `position`, `alert`, `holders` (users with it
    in a watchlist), `viewed_at`; and `stream_error` / `retry_due` for the
    ones a provider named unknown (retried when due; clearing the error in
    admin subscribes them again at once)."""
    from django.db import connection
    from django.utils import timezone

    sql, params, json_field = _to_stream(tuple(sorted(extra_symbols)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor]
    decode = json_field.from_db_value
    now = timezone.now()
    for row in rows:
        row["provider_symbols"] = decode(row["provider_symbols"], None, connection)
        row["alert"] = row["symbol"] in extra_symbols
        retry_at = row.pop("stream_error_retry_at")
        row["retry_due"] = bool(row["stream_error"]) and (
            retry_at is not None and retry_at <= now
        )
    return rows


@lru_cache(maxsize=4)
def _to_stream(extra_symbols: tuple[str, ...]):
    """`instruments_to_stream`'s query as SQL and parameters, compiled once
    per set of alert symbols (one statement), and the JSON field its rows
    decode: the worker asks every second, and Django took longer to compile
    the query than PostgreSQL to answer it (bench/PROFILE-ingest.md)."""
    from django.db.models import Count, Exists, OuterRef, Q

    from marketdata.models import Instrument, Position
    from marketdata.selectors import instruments_in_use

    wanted = Q(id__in=instruments_in_use().values("id"))
    if extra_symbols:
        wanted |= Q(active=True, symbol__in=list(extra_symbols))
    query = (
        Instrument.objects.filter(wanted)
        .annotate(
            position=Exists(Position.objects.open().filter(instrument=OuterRef("pk"))),
            holders=Count("watchlist_items__watchlist__owner", distinct=True),
        )
        .order_by("symbol")
        .values(
            "id",
            "symbol",
            "asset_class",
            "provider_symbols",
            "stream_error",
            "stream_error_retry_at",
            "viewed_at",
            "position",
            "holders",
        )
    ).query
    sql, params = query.sql_with_params()
    return sql, params, Instrument._meta.get_field("provider_symbols")


def feed_status_get_safe() -> dict:
    """`feed_status_get()`, or an "unknown" document (with `error`) when Redis
    does not answer; while it is known to be down, tried once a second."""
    outage = redis_outage()
    if outage.should_try():
        try:
            status = feed_status_get()
        except REDIS_ERRORS as exc:
            outage.failed(exc, doing="reading the stream workers' health")
        else:
            outage.succeeded()
            return status
    else:
        outage.skipped("status reads")
    return {
        "updated_at": datetime.now(UTC).isoformat(),
        "ok": False,
        "error": f"status unavailable: {outage.name} does not answer "
        f"({outage.last_error})",
        "workers": [],
        "connections": [],
    }


def ops_status_get(*, feed: dict) -> dict:
    """What the status page and `/metrics` show beside the stream workers:
    provider REST response times and rate-limit use
    (`marketdata.providers.rest_stats`), Dramatiq queue depths
    (`core.queues`) and each process's CPU and memory (this web process, the
    stream workers from their health documents in `feed`, the Dramatiq
    workers from `core.process`). A part Redis cannot give is None."""
    from core.process import process_usage, processes_get
    from core.queues import queue_depths
    from marketdata.providers.rest_stats import rest_stats_get

    status: dict = {"rest": None, "queues": None}
    processes = [process_usage(role="web")]
    for worker in feed.get("workers", []):
        if worker.get("alive") and worker.get("process"):
            processes.append({**worker["process"], "worker": worker.get("id")})
    outage = redis_outage()
    if outage.should_try():
        try:
            status["rest"] = rest_stats_get()
            status["queues"] = queue_depths()
            processes.extend(processes_get())
        except REDIS_ERRORS as exc:
            outage.failed(exc, doing="reading REST, queue and process figures")
        else:
            outage.succeeded()
    status["processes"] = processes
    return status
