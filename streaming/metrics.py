"""Prometheus metrics of the stream workers, served by the web process.

Built per scrape from `streaming.selectors.feed_status_get()` (the health
documents the workers write to Redis every 2 s), so the web process needs no
shared state with the workers and every worker/shard shows up. When Redis is
out of reach the document carries `error`: `tapeline_stream_status_available`
is 0 and there are no worker series (unknown, not down).
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from streaming.selectors import feed_status_get, ops_status_get

STATES = (
    "idle",
    "connecting",
    "authenticating",
    "live",
    "backoff",
    "auth_failed",
    "stopped",
)
KINDS = ("trade", "quote", "bar", "status")
CONNECTION_LABELS = ["worker", "connection", "provider", "asset_class"]


class StreamMetricsCollector(Collector):
    def __init__(self, status: dict | None = None, ops: dict | None = None) -> None:
        self._status = status
        self._ops = ops

    def collect(self):
        status = self._status if self._status is not None else feed_status_get()
        available = GaugeMetricFamily(
            "tapeline_stream_status_available",
            "1 when the stream workers' health reports could be read from Redis.",
        )
        available.add_metric([], 0.0 if status.get("error") else 1.0)
        yield available
        w_labels = ["worker", "shard"]
        up = GaugeMetricFamily(
            "tapeline_stream_worker_up",
            "Worker reported within 10 s and is running.",
            labels=w_labels,
        )
        age = GaugeMetricFamily(
            "tapeline_stream_worker_report_age_seconds",
            "Seconds since the worker's last health report.",
            labels=w_labels,
        )
        events = CounterMetricFamily(
            "tapeline_stream_worker_events",
            "Normalized events processed.",
            labels=w_labels,
        )
        published = CounterMetricFamily(
            "tapeline_stream_worker_published",
            "market.update messages sent to the channel layer.",
            labels=w_labels,
        )
        bars = CounterMetricFamily(
            "tapeline_stream_worker_bars_stored",
            "Minute bars written (inserted or corrected).",
            labels=w_labels,
        )
        gaps = CounterMetricFamily(
            "tapeline_stream_worker_gaps_reported",
            "Gaps reported for backfill.",
            labels=w_labels,
        )
        ledger = GaugeMetricFamily(
            "tapeline_stream_ledger",
            "Nothing-lost bookkeeping: minutes waiting for storage, gaps waiting "
            "for the ledger, alerts waiting to be recorded, and running totals.",
            labels=[*w_labels, "what"],
        )
        inbox = GaugeMetricFamily(
            "tapeline_stream_worker_inbox_depth",
            "Received batches waiting to be processed.",
            labels=w_labels,
        )
        instruments = GaugeMetricFamily(
            "tapeline_stream_instruments",
            "Streamed instruments by freshness.",
            labels=[*w_labels, "freshness"],
        )
        c_up = GaugeMetricFamily(
            "tapeline_stream_connection_up",
            "1 when the connection is live.",
            labels=CONNECTION_LABELS,
        )
        c_state = GaugeMetricFamily(
            "tapeline_stream_connection_state",
            "1 for the connection's current state.",
            labels=[*CONNECTION_LABELS, "state"],
        )
        messages = CounterMetricFamily(
            "tapeline_stream_messages",
            "Market-data messages received by kind.",
            labels=[*CONNECTION_LABELS, "kind"],
        )
        rate = GaugeMetricFamily(
            "tapeline_stream_messages_per_second",
            "Recent receive rate by kind.",
            labels=[*CONNECTION_LABELS, "kind"],
        )
        problems = CounterMetricFamily(
            "tapeline_stream_problems",
            "Malformed frames, provider errors, unknown symbols, duplicates, out-of-order events.",
            labels=[*CONNECTION_LABELS, "problem"],
        )
        suspects = CounterMetricFamily(
            "tapeline_stream_suspect_ticks",
            "Trades held out of bars and alerts as suspect (streaming.suspect), "
            "and how many of them were confirmed or rejected.",
            labels=[*CONNECTION_LABELS, "outcome"],
        )
        anomalies = CounterMetricFamily(
            "tapeline_stream_anomalies",
            "Market anomalies detected, recorded and dropped "
            "(streaming.anomaly_watch).",
            labels=[*w_labels, "what"],
        )
        reconnects = CounterMetricFamily(
            "tapeline_stream_reconnects",
            "Sessions lost and re-established.",
            labels=CONNECTION_LABELS,
        )
        last_age = GaugeMetricFamily(
            "tapeline_stream_last_message_age_seconds",
            "Seconds since the last frame.",
            labels=CONNECTION_LABELS,
        )
        lag = GaugeMetricFamily(
            "tapeline_stream_lag_seconds",
            "Receive time minus event time.",
            labels=[*CONNECTION_LABELS, "quantile"],
        )
        subscribed = GaugeMetricFamily(
            "tapeline_stream_subscribed_instruments",
            "Instruments subscribed on the connection.",
            labels=CONNECTION_LABELS,
        )
        rejected = GaugeMetricFamily(
            "tapeline_stream_rejected_instruments",
            "Instruments the provider refused.",
            labels=CONNECTION_LABELS,
        )
        wanted = GaugeMetricFamily(
            "tapeline_stream_wanted_instruments",
            "Instruments in use by reason they are or are not streamed "
            "(streaming, over_budget, rejected, no_provider).",
            labels=["worker", "shard", "reason"],
        )
        budget = GaugeMetricFamily(
            "tapeline_stream_budget_instruments",
            "Plan symbol budget per connection: used, limit (configured) and "
            "learned (taught by the provider's refusals); absent = no limit.",
            labels=["worker", "connection", "what"],
        )
        provider_healthy = GaugeMetricFamily(
            "tapeline_stream_provider_healthy",
            "1 when the provider may carry instruments (healthy, not benched).",
            labels=["worker", "provider"],
        )

        diverged = GaugeMetricFamily(
            "tapeline_stream_divergence_percent",
            "Live price against another provider's, where above "
            "STREAM_DIVERGENCE_PCT (streaming.crosscheck).",
            labels=["worker", "symbol", "provider", "other"],
        )

        for worker in status.get("workers", []):
            wl = [str(worker.get("id")), str(worker.get("shard"))]
            up.add_metric(wl, 1.0 if worker.get("alive") else 0.0)
            age.add_metric(wl, float(worker.get("age_s") or 0))
            events.add_metric(wl, float(worker.get("events_total") or 0))
            published.add_metric(wl, float(worker.get("published_total") or 0))
            bars.add_metric(wl, float(worker.get("bars_stored") or 0))
            gaps.add_metric(wl, float(worker.get("gaps_reported") or 0))
            inbox.add_metric(wl, float(worker.get("inbox_depth") or 0))
            for what in ("detected", "recorded", "dropped"):
                value = (worker.get("anomalies") or {}).get(what)
                if value is not None:
                    anomalies.add_metric([*wl, what], float(value))
            for what, value in (worker.get("ledger") or {}).items():
                ledger.add_metric([*wl, what], float(value or 0))
            for freshness, count in (worker.get("freshness") or {}).items():
                instruments.add_metric([*wl, freshness], float(count))
            subs = worker.get("subscriptions") or {}
            for reason, count in (subs.get("counts") or {}).items():
                wanted.add_metric([*wl, reason], float(count))
            for b in subs.get("budgets") or []:
                for what, key in (("used", "used"), ("limit", "limit"),
                                  ("learned", "learned_limit")):  # fmt: skip
                    if b.get(key) is not None:
                        budget.add_metric([wl[0], b["connection"], what], float(b[key]))
            for d in (worker.get("crosscheck") or {}).get("divergent") or []:
                diverged.add_metric(
                    [
                        wl[0],
                        d["symbol"],
                        d["ours"]["provider"],
                        d["theirs"]["provider"],
                    ],
                    float(d["percent"]),
                )
            for p in subs.get("providers") or []:
                ok = p.get("healthy") and not p.get("benched_for_s")
                provider_healthy.add_metric([wl[0], p["provider"]], 1.0 if ok else 0.0)
            for c in worker.get("connections", []):
                cl = [
                    wl[0],
                    str(c.get("id")),
                    str(c.get("provider")),
                    str(c.get("asset_class")),
                ]
                state = c.get("state")
                c_up.add_metric(cl, 1.0 if state == "live" else 0.0)
                for name in STATES:
                    c_state.add_metric([*cl, name], 1.0 if state == name else 0.0)
                totals = c.get("totals") or {}
                rates = c.get("msgs_per_s") or {}
                for kind in KINDS:
                    messages.add_metric([*cl, kind], float(totals.get(kind) or 0))
                    rate.add_metric([*cl, kind], float(rates.get(kind) or 0))
                for problem in (
                    "malformed",
                    "errors",
                    "unknown_symbols",
                    "duplicates",
                    "out_of_order",
                ):
                    problems.add_metric([*cl, problem], float(c.get(problem) or 0))
                for outcome, value in (c.get("suspect_ticks") or {}).items():
                    suspects.add_metric([*cl, outcome], float(value or 0))
                reconnects.add_metric(cl, float(c.get("reconnects") or 0))
                if c.get("last_message_age_s") is not None:
                    last_age.add_metric(cl, float(c["last_message_age_s"]))
                lag_ms = c.get("lag_ms") or {}
                for quantile, key in (("0.5", "p50"), ("0.99", "p99")):
                    if lag_ms.get(key) is not None:
                        lag.add_metric([*cl, quantile], float(lag_ms[key]) / 1000.0)
                subscribed.add_metric(cl, float(c.get("subscribed") or 0))
                rejected.add_metric(cl, float(len(c.get("rejected") or {})))
        yield from _health_families(status)
        ops = self._ops if self._ops is not None else ops_status_get(feed=status)
        yield from _ops_families(ops)
        yield from (
            up, age, events, published, bars, gaps, ledger, inbox, instruments, c_up,
            c_state,
            messages, rate, problems, suspects, anomalies, reconnects, last_age, lag,
            subscribed, rejected,
            wanted, budget, provider_healthy, diverged,
        )  # fmt: skip


def _health_families(status: dict):
    """Connection health scores and the ops alerts the workers hold."""
    score = GaugeMetricFamily(
        "tapeline_stream_connection_health_score",
        "Connection health score 0-100 (streaming.health_score).",
        labels=CONNECTION_LABELS,
    )
    healthy = GaugeMetricFamily(
        "tapeline_stream_connection_healthy",
        "1 when the connection's health score says healthy.",
        labels=CONNECTION_LABELS,
    )
    ops = GaugeMetricFamily(
        "tapeline_ops_alerts_active",
        "Ops alerts raised by the feed monitor and not cleared.",
        labels=["worker", "kind"],
    )
    waiting = GaugeMetricFamily(
        "tapeline_ops_alerts_waiting",
        "Ops alert records waiting for the database.",
        labels=["worker"],
    )
    for worker in status.get("workers", []):
        wid = str(worker.get("id"))
        for c in worker.get("connections", []):
            health = c.get("health")
            if not health:
                continue
            labels = [
                wid,
                str(c.get("id")),
                str(c.get("provider")),
                str(c.get("asset_class")),
            ]
            score.add_metric(labels, float(health.get("value") or 0))
            healthy.add_metric(labels, 1.0 if health.get("healthy") else 0.0)
        monitor = worker.get("monitor") or {}
        kinds: dict[str, int] = {}
        for alert in monitor.get("ops_alerts", []):
            kinds[alert.get("kind")] = kinds.get(alert.get("kind"), 0) + 1
        for kind in OPS_KINDS:
            ops.add_metric([wid, kind], float(kinds.get(kind, 0)))
        waiting.add_metric([wid], float(monitor.get("ops_alerts_waiting") or 0))
    yield from (score, healthy, ops, waiting)


OPS_KINDS = ("no_quotes", "no_bars", "reconnects", "disconnected", "database")


def _ops_families(ops: dict):
    """Provider REST calls, Dramatiq queues, process CPU and memory."""
    p = ["provider"]
    requests = CounterMetricFamily(
        "tapeline_rest_requests", "Provider REST requests made.", labels=p
    )
    errors = CounterMetricFamily(
        "tapeline_rest_errors", "REST requests with no answer or HTTP >= 400.", labels=p
    )
    limited = CounterMetricFamily(
        "tapeline_rest_rate_limited", "REST answers 418/429.", labels=p
    )
    throttled = CounterMetricFamily(
        "tapeline_rest_throttled_seconds",
        "Time spent waiting for the shared rate limiter.",
        labels=p,
    )
    latency = GaugeMetricFamily(
        "tapeline_rest_response_seconds",
        "REST response time over the last 256 requests.",
        labels=[*p, "quantile"],
    )
    use = GaugeMetricFamily(
        "tapeline_rest_rate_limit_use",
        "Requests in the last minute over the provider's per-minute limit.",
        labels=p,
    )
    for r in ops.get("rest") or []:
        labels = [r["provider"]]
        requests.add_metric(labels, float(r["requests"]))
        errors.add_metric(labels, float(r["errors"]))
        limited.add_metric(labels, float(r["rate_limited"]))
        throttled.add_metric(labels, float(r["throttled_s"]))
        for quantile, key in (("0.5", "p50_ms"), ("0.95", "p95_ms")):
            if r.get(key) is not None:
                latency.add_metric([*labels, quantile], r[key] / 1000.0)
        if r.get("rate_limit_use") is not None:
            use.add_metric(labels, float(r["rate_limit_use"]))
    queues = GaugeMetricFamily(
        "tapeline_dramatiq_queue_messages",
        "Messages in a Dramatiq queue: ready, total (ready, delayed or being "
        "worked on), delayed, dead.",
        labels=["queue", "state"],
    )
    for q in ops.get("queues") or []:
        for state in ("ready", "total", "delayed", "dead"):
            queues.add_metric([q["queue"], state], float(q[state]))
    pl = ["role", "host", "pid"]
    cpu = CounterMetricFamily(
        "tapeline_process_cpu_seconds", "CPU time of the process.", labels=pl
    )
    cpu_pct = GaugeMetricFamily(
        "tapeline_process_cpu_percent",
        "Share of one core used since the process's previous report.",
        labels=pl,
    )
    rss = GaugeMetricFamily(
        "tapeline_process_resident_memory_bytes", "Resident memory.", labels=pl
    )
    for proc in ops.get("processes") or []:
        labels = [str(proc.get("role")), str(proc.get("host")), str(proc.get("pid"))]
        cpu.add_metric(labels, float(proc.get("cpu_s") or 0))
        if proc.get("cpu_percent") is not None:
            cpu_pct.add_metric(labels, float(proc["cpu_percent"]))
        rss.add_metric(labels, float(proc.get("rss_mb") or 0) * 2**20)
    yield from (
        requests,
        errors,
        limited,
        throttled,
        latency,
        use,
        queues,
        cpu,
        cpu_pct,
        rss,
    )
