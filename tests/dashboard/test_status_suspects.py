"""The status page counts suspect ticks per connection and per instrument."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from streaming.services import feed_health_put
from tests.streaming.helpers import NOW
from tests.streaming.test_worker_anomalies import quiet, trades

pytestmark = pytest.mark.transactional


def section(html: str, table_id: str) -> str:
    start = html.index(f'id="{table_id}"')
    return html[start : html.index("</table>", start)]


def test_status_page_shows_suspect_tick_counts(
    staff_user, instruments, make_worker, attach
):
    worker, connection = make_worker(anomalies=False)
    worker.connections[connection.key] = connection
    attach(worker, instruments["AAPL"], connection)
    now = NOW.timestamp()
    worker.process(connection, now, trades(quiet(40)))
    worker.process(connection, now, trades(["150.00"], start_second=25, first_id=90))
    worker.process(connection, now, trades(["100.00"], start_second=26, first_id=91))
    feed_health_put(worker_id=worker.id, document=worker.health())

    client = Client()
    client.force_login(staff_user)
    html = client.get(reverse("dashboard:status")).content.decode()
    row = section(html, "connections")
    row = row[row.index('data-id="simulator:equity"') :]
    assert '<td class="num" data-suspect>1 / 0 / 1</td>' in row
    by_instrument = section(html, "suspect-ticks")
    assert 'data-symbol="AAPL"' in by_instrument
    cells = by_instrument[by_instrument.index('data-symbol="AAPL"') :]
    assert cells.count('<td class="num">') == 4 and ">1</td>" in cells
