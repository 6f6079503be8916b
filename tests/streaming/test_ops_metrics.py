"""`/metrics` carries the feed monitor's figures: connection health scores
and active ops alerts (from a real worker's health document), provider REST
response times and rate-limit use (real requests to the simulator), Dramatiq
queue depths (the alert's email, enqueued) and process CPU and memory."""

from __future__ import annotations

import pytest

from core.process import process_report
from marketdata.providers.http import HttpClient
from marketdata.providers.rest_stats import rest_stats_flush
from streaming.services import feed_health_put
from tests.streaming.test_metrics import samples, value
from tests.streaming.test_monitor import run_steps, setup  # noqa: F401 - fixture

pytestmark = pytest.mark.transactional


def test_metrics_expose_health_rest_queues_and_processes(
    setup,  # noqa: F811
    simulator,
    client,
):
    worker, connection, clock, market = setup
    market["open"] = False
    connection.state = "backoff"
    run_steps(worker, clock, 301)  # disconnected for 5 min: an ops alert
    feed_health_put(worker_id=worker.id, document=worker.health())

    rest = HttpClient(provider="binance", base_url=simulator.http_url)
    for _ in range(3):
        rest.get_json("/api/v3/ping")
    rest_stats_flush()
    process_report()  # what the reclaimer does in each Dramatiq worker

    found = samples(client.get("/metrics").content.decode())
    key = {"connection": "simulator:equity"}
    assert value(found, "tapeline_stream_connection_healthy", **key) == 0
    assert 0 <= value(found, "tapeline_stream_connection_health_score", **key) < 100
    assert value(found, "tapeline_ops_alerts_active", kind="disconnected") == 1
    assert value(found, "tapeline_ops_alerts_active", kind="no_quotes") == 0
    assert value(found, "tapeline_rest_requests_total", provider="binance") == 3
    assert value(found, "tapeline_rest_errors_total", provider="binance") == 0
    assert (
        value(
            found, "tapeline_rest_response_seconds", provider="binance", quantile="0.95"
        )
        > 0
    )
    # 3 requests in a minute against Binance's 1200 a minute.
    assert value(found, "tapeline_rest_rate_limit_use", provider="binance") == (
        pytest.approx(3 / 1200, abs=1e-3)
    )
    # The disconnected alert's email to staff waits in the alerts queue.
    assert (
        value(found, "tapeline_dramatiq_queue_messages", queue="alerts", state="ready")
        == 1
    )
    for role in ("web", "dramatiq", "stream"):
        assert value(found, "tapeline_process_resident_memory_bytes", role=role) > 2**20
        assert value(found, "tapeline_process_cpu_seconds_total", role=role) > 0
