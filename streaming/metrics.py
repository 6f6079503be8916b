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

from streaming.selectors import feed_status_get

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
    def __init__(self, status: dict | None = None) -> None:
        self._status = status

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

        for worker in status.get("workers", []):
            wl = [str(worker.get("id")), str(worker.get("shard"))]
            up.add_metric(wl, 1.0 if worker.get("alive") else 0.0)
            age.add_metric(wl, float(worker.get("age_s") or 0))
            events.add_metric(wl, float(worker.get("events_total") or 0))
            published.add_metric(wl, float(worker.get("published_total") or 0))
            bars.add_metric(wl, float(worker.get("bars_stored") or 0))
            gaps.add_metric(wl, float(worker.get("gaps_reported") or 0))
            inbox.add_metric(wl, float(worker.get("inbox_depth") or 0))
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
                reconnects.add_metric(cl, float(c.get("reconnects") or 0))
                if c.get("last_message_age_s") is not None:
                    last_age.add_metric(cl, float(c["last_message_age_s"]))
                lag_ms = c.get("lag_ms") or {}
                for quantile, key in (("0.5", "p50"), ("0.99", "p99")):
                    if lag_ms.get(key) is not None:
                        lag.add_metric([*cl, quantile], float(lag_ms[key]) / 1000.0)
                subscribed.add_metric(cl, float(c.get("subscribed") or 0))
                rejected.add_metric(cl, float(len(c.get("rejected") or {})))
        yield from (
            up, age, events, published, bars, gaps, ledger, inbox, instruments, c_up,
            c_state,
            messages, rate, problems, reconnects, last_age, lag, subscribed, rejected,
            wanted, budget, provider_healthy,
        )  # fmt: skip
