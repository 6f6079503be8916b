"""The stream worker's health report, built every 2 s.

Stored in Redis (hash `<namespace>:streams:health`, field = worker id, see
`streaming.selectors.feed_status_get`), sent to the `feed.status` group and
exported on `/metrics`. One document per worker:

    {
      "id": "host:pid:0/1", "host": "...", "pid": 123, "shard": "0/1",
      "state": "running" | "stopped" | "failed",
      "started_at": "<iso>", "reported_at": <epoch s>, "uptime_s": 12.3,
      "market_clock": <epoch s>,         # worker.now(): the feed's clock when
                                        # a simulated one runs ahead
      "instruments": 42,                 # instruments this worker streams
      "events_total": 123456, "events_per_s": 810.5,
      "published_total": 5000, "published_per_s": 95.0, "publish_failures": 0,
      "inbox_depth": 0,                  # received batches not yet processed
      "bars_stored": 1200, "bar_store_failures": 0, "late_trades": 0,
      "gaps_reported": 3,
      "freshness": {"live": 40, "stale": 0, "closed": 2, "halted": 0},
      "connections": [{
        "id": "alpaca:equity", "provider": "alpaca", "asset_class": "equity",
        "url": "wss://…/v2/iex",        # without query string (tokens)
        "state": "live",                # idle|connecting|authenticating|live|
                                        # backoff|auth_failed|stopped
        "state_since": "<iso>",
        "msgs_per_s": {"trade": 1.0, "quote": 2.0, "bar": 0.1, "status": 0.0,
                       "frames": 1.5},
        "totals": {"trade": 10, "quote": 20, "bar": 1, "status": 0},
        "malformed": 0, "errors": 0, "unknown_symbols": 0, "duplicates": 0,
        "out_of_order": 0, "quotes_unchanged": 5,
        "suspect_ticks": {"suspect": 2, "confirmed": 1, "rejected": 1},
        "reconnects": 1, "connects": 2, "connect_failures": 0,
        "last_message_age_s": 0.2,      # any frame
        "last_event_age_s": 0.2,        # market data
        "lag_ms": {"p50": 3.1, "p99": 12.0, "samples": 300},
        "subscribed": 40, "rejected": {"XYZ": "symbol not found (400)"},
        "last_error": "",
        "health": {"value": 97, "healthy": true, "reasons": [...],
                   "parts": {"uptime": 1.0, "reconnects": 1.0, ...}},
        "history": [[<epoch s>, <msgs/s>, <lag p99 ms|null>, <score>], ...]
      }],                               # health/history: streaming.monitor
      "suspect_ticks": {"AAPL": {"suspect": 2, "confirmed": 1,
                                 "rejected": 1, "held": 0}},
      "anomalies": {"detected": 3, "recorded": 3, "waiting": 0,
                    "dropped": 0, "instruments": 40},
      "monitor": {"ops_alerts": [<active ops alert>], "database": "ok",
                  "ops_alerts_waiting": 0, "ops_alerts_dropped": 0},
      "process": {"role": "stream", "pid": 123, "cpu_s": 1.2,
                  "cpu_percent": 3.5, "rss_mb": 80.1, "threads": 6, ...}
    }
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime

from core.process import process_usage


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def _age(epoch: float | None, now: float) -> float | None:
    return None if epoch is None else round(max(0.0, now - epoch), 3)


SUSPECT_COUNTS = ("suspect", "confirmed", "rejected")
SUSPECT_LISTED = 50  # instruments listed in the report


def suspect_counts(worker) -> tuple[dict[str, dict], dict[str, dict]]:
    """Suspect-tick counts (streaming.suspect) by connection key (summed over
    the instruments it serves now) and by instrument (the `SUSPECT_LISTED`
    with the most)."""
    by_connection: dict[str, dict] = {}
    by_symbol: dict[str, dict] = {}
    for symbol, state in worker.states.items():
        test = state.suspect
        if test is None or not test.suspect:
            continue
        counts = test.counts()
        by_symbol[symbol] = counts
        connection = worker.routes.get(symbol)
        if connection is not None:
            total = by_connection.setdefault(
                connection.key, dict.fromkeys(SUSPECT_COUNTS, 0)
            )
            for name in SUSPECT_COUNTS:
                total[name] += counts[name]
    if len(by_symbol) > SUSPECT_LISTED:
        top = sorted(by_symbol, key=lambda s: -by_symbol[s]["suspect"])
        by_symbol = {s: by_symbol[s] for s in top[:SUSPECT_LISTED]}
    return by_connection, by_symbol


def connection_health(
    connection, *, now: float, monitor=None, suspects: dict | None = None
) -> dict:
    stats = connection.stats
    report = {} if monitor is None else monitor.connection_report(connection)
    suspects = (suspects or {}).get(connection.key) or {}
    return {
        "id": connection.key,
        "provider": connection.provider_name,
        "asset_class": connection.asset_class,
        "url": connection.public_url,
        "state": connection.state,
        "state_since": _iso(connection.state_since),
        "msgs_per_s": stats.rates(),
        "totals": dict(stats.by_kind),
        "malformed": stats.malformed,
        "errors": stats.errors,
        "unknown_symbols": stats.unknown_symbols,
        "duplicates": stats.duplicates,
        "out_of_order": stats.out_of_order,
        "quotes_unchanged": stats.quotes_unchanged,
        "suspect_ticks": {name: suspects.get(name, 0) for name in SUSPECT_COUNTS},
        "reconnects": stats.reconnects,
        "connects": stats.connects,
        "connect_failures": stats.connect_failures,
        "last_message_age_s": _age(stats.last_frame_at, now),
        "last_event_age_s": _age(stats.last_event_at, now),
        "lag_ms": stats.lag_ms(),
        "subscribed": len(connection.subscribed),
        "rejected": dict(connection.rejected),
        "last_error": connection.last_error,
        **report,
    }


class WorkerRates:
    """Per-second rates of worker-level totals between two reports."""

    def __init__(self) -> None:
        self._previous: tuple[float, dict[str, int]] | None = None

    def __call__(self, totals: dict[str, int]) -> dict[str, float]:
        now = time.monotonic()
        previous, self._previous = self._previous, (now, dict(totals))
        if previous is None:
            return dict.fromkeys(totals, 0.0)
        elapsed = max(now - previous[0], 1e-6)
        return {
            name: round((value - previous[1].get(name, 0)) / elapsed, 2)
            for name, value in totals.items()
        }


def worker_health(worker, *, state: str = "running") -> dict:
    """The health document of a `StreamWorker` (see the module docstring)."""
    now = time.time()
    counts = dict.fromkeys(("live", "stale", "closed", "halted", "over_limit"), 0)
    for instrument in worker.states.values():
        counts[instrument.freshness] = counts.get(instrument.freshness, 0) + 1
    rates = worker.rates(
        {"events": worker.events_total, "published": worker.publisher.published}
    )
    by_connection, by_symbol = suspect_counts(worker)
    return {
        "id": worker.id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "shard": str(worker.options.shard),
        "state": state,
        "started_at": datetime.fromtimestamp(worker.started_at, UTC).isoformat(),
        "reported_at": now,
        "market_clock": worker.now().timestamp(),
        "uptime_s": round(now - worker.started_at, 1),
        "instruments": len(worker.states),
        "events_total": worker.events_total,
        "events_per_s": rates["events"],
        "published_total": worker.publisher.published,
        "published_per_s": rates["published"],
        "publish_failures": worker.publisher.failures,
        "inbox_depth": len(worker.inbox),
        "bars_stored": worker.bars_stored,
        "bar_store_failures": worker.bar_store_failures,
        "late_trades": worker.aggregator.late_trades,
        "gaps_reported": worker.gaps_reported,
        # nothing lost (streaming.ledger): what waits in memory and why
        "ledger": {
            "unstored_minutes": worker.aggregator.unstored(),
            "gaps_pending": len(worker.gaps.pending),
            "overflowed_minutes": worker.ledger.overflowed,
            "reconciled_missing": worker.ledger.reconciled_missing,
            "sweep_queued": worker.ledger.swept,
            "alerts_waiting": len(worker.alerts.queue),
            "alerts_dropped": worker.alerts.dropped,
        },
        "freshness": counts,
        # plan budgets and failover (streaming.subscriptions)
        "subscriptions": worker.subscriptions.document(now),
        "crosscheck": worker.crosscheck.document(),
        "monitor": worker.monitor.report(),
        "process": process_usage(role="stream"),
        # streaming.suspect and streaming.anomaly_watch
        "suspect_ticks": by_symbol,
        "anomalies": worker.anomalies.document(),
        "connections": [
            connection_health(
                c, now=now, monitor=worker.monitor, suspects=by_connection
            )
            for c in worker.connections.values()
        ],
    }
