from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streaming.services import feed_health_put

WORKER = {
    "id": "host:1:0/1",
    "shard": "0/1",
    "state": "running",
    "reported_at": 0,
    "events_total": 1234,
    "published_total": 99,
    "bars_stored": 12,
    "gaps_reported": 1,
    "inbox_depth": 0,
    "freshness": {"live": 2, "stale": 1, "closed": 0, "halted": 0},
    "connections": [
        {
            "id": "alpaca:equity",
            "provider": "alpaca",
            "asset_class": "equity",
            "state": "live",
            "totals": {"trade": 10, "quote": 20, "bar": 1, "status": 0},
            "msgs_per_s": {"trade": 1.5, "quote": 2.0, "bar": 0.0, "status": 0.0},
            "malformed": 3,
            "reconnects": 2,
            "last_message_age_s": 0.25,
            "lag_ms": {"p50": 4.0, "p99": 40.0, "samples": 10},
            "subscribed": 3,
            "rejected": {"XYZ": "invalid symbol"},
            "suspect_ticks": {"suspect": 5, "confirmed": 3, "rejected": 2},
        }
    ],
    "anomalies": {"detected": 4, "recorded": 3, "waiting": 1, "dropped": 0},
}


def samples(text: str) -> dict:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            found[key] = sample.value
    return found


def value(found, name, **labels):
    matches = [
        v
        for (n, ls), v in found.items()
        if n == name and all(dict(ls).get(k) == v2 for k, v2 in labels.items())
    ]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


@pytest.mark.django_db
def test_metrics_exposes_worker_and_connection_health(client):
    feed_health_put(
        worker_id=WORKER["id"], document={**WORKER, "reported_at": time.time()}
    )
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())
    assert value(found, "tapeline_stream_worker_up", worker="host:1:0/1") == 1
    assert value(found, "tapeline_stream_worker_events_total") == 1234
    assert value(found, "tapeline_stream_instruments", freshness="stale") == 1
    assert (
        value(found, "tapeline_stream_connection_up", connection="alpaca:equity") == 1
    )
    assert value(found, "tapeline_stream_messages_total", kind="quote") == 20
    assert value(found, "tapeline_stream_problems_total", problem="malformed") == 3
    assert value(found, "tapeline_stream_reconnects_total") == 2
    assert value(
        found, "tapeline_stream_lag_seconds", quantile="0.99"
    ) == pytest.approx(0.04)
    assert value(found, "tapeline_stream_rejected_instruments") == 1
    assert value(found, "tapeline_stream_suspect_ticks_total", outcome="rejected") == 2
    assert value(found, "tapeline_stream_suspect_ticks_total", outcome="suspect") == 5
    assert value(found, "tapeline_stream_anomalies_total", what="recorded") == 3


@pytest.mark.django_db
def test_a_silent_worker_shows_as_down(client):
    feed_health_put(
        worker_id=WORKER["id"], document={**WORKER, "reported_at": time.time() - 60}
    )
    found = samples(client.get("/metrics").content.decode())
    assert value(found, "tapeline_stream_worker_up") == 0


@pytest.mark.django_db
def test_metrics_token_is_required_when_configured(client, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert ok.status_code == 200


@pytest.mark.django_db
def test_cleanly_stopped_workers_drop_out_of_the_status_after_a_while():
    from streaming.selectors import feed_status_get

    now = time.time()
    feed_health_put(
        worker_id="a",
        document={**WORKER, "id": "a", "state": "stopped", "reported_at": now - 10},
    )
    feed_health_put(
        worker_id="b",
        document={**WORKER, "id": "b", "state": "stopped", "reported_at": now - 600},
    )
    feed_health_put(
        worker_id="c", document={**WORKER, "id": "c", "reported_at": now - 600}
    )
    status = feed_status_get()
    assert [w["id"] for w in status["workers"]] == ["a", "c"]
    assert not any(w["alive"] for w in status["workers"]) and not status["ok"]
