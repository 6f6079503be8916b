"""The status page's health section: scores and sparklines from a real
worker's health document, the ops alert history, queues and processes."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from streaming.services import feed_health_put
from tests.streaming.test_monitor import quote, run_steps, setup  # noqa: F401

pytestmark = pytest.mark.transactional


def section(html: str, table_id: str) -> str:
    start = html.index(f'id="{table_id}"')
    return html[start : html.index("</table>", start)]


def test_status_page_shows_health_charts_and_ops_alerts(
    setup,  # noqa: F811
    staff_user,
    user,
):
    worker, connection, clock, market = setup

    def feed(i):
        q = quote("AAPL", i)
        worker.process(connection, q.ts.timestamp() + 0.05, [q])

    run_steps(worker, clock, 95, each=feed)  # a healthy minute and a half
    market["open"] = False
    connection.state = "backoff"
    connection.last_error = "connection lost: reset by peer"
    run_steps(worker, clock, 301)  # then down for five minutes
    feed_health_put(worker_id=worker.id, document=worker.health())

    staff = Client()
    staff.force_login(staff_user)
    html = staff.get(reverse("dashboard:status")).content.decode()
    health = section(html, "feed-health")
    row = health[health.index('data-connection="simulator:equity"') :]
    assert re.search(r"data-score>\d+ unhealthy<", row)
    assert "backoff for 301 s" in row
    # Two sparklines with a line each (message rate, lag p99).
    points = re.findall(r'<polyline points="([^"]*)"', row)
    assert len(points) == 2 and all(len(p.split()) >= 3 for p in points)
    ops = section(html, "ops-alerts")
    assert "simulator:equity: not connected for 5 min" in ops
    assert "reset by peer" in ops and ">active<" in ops
    assert ">alerts<" in section(html, "queues")
    assert ">web<" in section(html, "processes")

    plain = Client()
    plain.force_login(user)
    assert plain.get(reverse("dashboard:status")).status_code == 403
