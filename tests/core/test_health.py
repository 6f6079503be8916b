from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_healthz_ok_when_database_and_redis_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok"},
    }


@pytest.mark.django_db
def test_healthz_degraded_but_200_when_redis_is_down(client, settings):
    # Pages still render from the database: a load balancer must keep
    # sending traffic, and the body says what is missing.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert "Redis is not reachable" in body["checks"]["redis"]


@pytest.mark.django_db(transaction=True)
def test_healthz_503_when_database_is_down(client, settings):
    from django.db import connections

    original = dict(connections["default"].settings_dict)
    connections["default"].close()
    connections["default"].settings_dict["PORT"] = "1"
    try:
        response = client.get("/healthz")
    finally:
        connections["default"].close()
        connections["default"].settings_dict.update(original)
    assert response.status_code == 503
    assert "PostgreSQL is not reachable" in response.json()["checks"]["database"]
