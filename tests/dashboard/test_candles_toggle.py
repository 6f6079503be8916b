"""The instrument page's "Candlestick patterns" toggle, saved per user in the
chart settings next to the indicators (each saves its own section)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from preferences.selectors import preferences_get

pytestmark = pytest.mark.django_db
CHECKED = '<input type="checkbox" name="candles" checked>'
UNCHECKED = '<input type="checkbox" name="candles">'


def save(client, document) -> tuple[int, dict]:
    response = client.post(
        reverse("dashboard:chart_settings"),
        data=json.dumps(document),
        content_type="application/json",
    )
    return response.status_code, response.json()


def page(client, symbol: str = "BTC/USD") -> str:
    return client.get(reverse("dashboard:instrument", args=[symbol])).content.decode()


def test_toggle_is_off_by_default_and_points_at_the_endpoint(user_client, instruments):
    html = page(user_client)
    assert UNCHECKED in html and "Candlestick patterns" in html
    assert 'data-candles-url="/api/instruments/BTC/USD/candles"' in html
    assert 'id="candles-legend"' in html


def test_toggle_is_remembered_and_indicator_saves_leave_it_alone(
    user_client, other_user, instruments, user
):
    assert save(user_client, {"indicators": {"rsi": {"on": True}}})[0] == 200
    status, payload = save(user_client, {"candles": {"on": True}})
    assert status == 200 and payload["chart"]["candles"] == {"on": True}
    # The indicators saved before are kept...
    assert payload["spec"] == "rsi:14"
    # ...and the indicator controls saving their section keep the toggle on.
    status, payload = save(user_client, {"indicators": {"sma": {"on": True}}})
    assert payload["chart"]["candles"] == {"on": True} and payload["spec"] == "sma:20"
    assert CHECKED in page(user_client, "AAPL")
    assert preferences_get(user=user).chart["candles"] == {"on": True}
    other = Client()
    other.force_login(other_user)
    assert UNCHECKED in page(other)
    assert save(user_client, {"candles": {"on": False}})[0] == 200
    assert UNCHECKED in page(user_client)


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({"candles": {"on": "yes"}}, "candles.on: expected true or false"),
        ({"candles": {"on": True, "size": 3}}, "candles: expected"),
        ({"candles": True}, "candles: expected"),
    ],
)
def test_bad_toggle_values_are_refused(user_client, user, document, error):
    save(user_client, {"candles": {"on": True}})
    status, payload = save(user_client, document)
    assert status == 400 and error in payload["error"]
    assert preferences_get(user=user).chart["candles"] == {"on": True}
