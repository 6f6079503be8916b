"""Watchlist rows built in Python (`dashboard.quote_html`): what a user
sees and submits from them, over real requests, PostgreSQL and Redis."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client
from django.urls import reverse

from marketdata.models import Instrument
from marketdata.services import watchlist_create
from streaming.snapshots import snapshots_put

pytestmark = pytest.mark.django_db


def test_names_are_escaped_in_every_place_they_appear(user, instruments):
    Instrument.objects.filter(symbol="AAPL").update(name="Apple <b>\"&' Inc")
    watchlist_create(owner=user, name='<img src=x onerror="x">', symbols=["AAPL"])
    client = Client()
    client.force_login(user)
    html = client.get(reverse("dashboard:index")).content.decode()
    row = html[html.index('data-symbol="AAPL"') :]
    row = row[: row.index("</tr>")]
    assert "Apple &lt;b&gt;&quot;&amp;&#x27; Inc" in row
    assert "<b>" not in row and "<img" not in row
    assert "Remove AAPL from &lt;img src=x onerror=&quot;x&quot;&gt;" in row


def test_the_rows_remove_form_removes_the_instrument(user, instruments):
    """The row's own form (action and CSRF token as rendered) works with
    CSRF checks on, as a browser without JavaScript would submit it."""
    watchlist = watchlist_create(owner=user, name="Two", symbols=["AAPL", "MSFT"])
    snapshots_put(
        snapshots=[
            {"symbol": "MSFT", "seq": 1, "received_at": time.time(), "last": "410.5"}
        ]
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    html = client.get(reverse("dashboard:index")).content.decode()
    row = html[html.index('data-symbol="MSFT"') :]
    row = row[: row.index("</tr>")]
    assert "410.50" in row and 'href="/instruments/MSFT/"' in row
    action = re.search(r'<form method="post" action="([^"]+)"', row).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', row).group(1)
    response = client.post(action, {"csrfmiddlewaretoken": token, "symbol": "MSFT"})
    assert response.status_code == 302
    assert [i.instrument.symbol for i in watchlist.items.all()] == ["AAPL"]
