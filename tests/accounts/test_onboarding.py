"""Onboarding after the first log-in: starter watchlists and a display time
zone, or a skip; asked once."""

from __future__ import annotations

import pytest

from marketdata.models import Watchlist
from preferences.selectors import preferences_get

pytestmark = pytest.mark.django_db

LOGIN = {"username": "trader", "password": "s3cret-pass"}


def lists(user) -> dict[str, list[str]]:
    return {
        w.name: [i.instrument.symbol for i in w.items.all()]
        for w in Watchlist.objects.filter(owner=user).prefetch_related(
            "items__instrument"
        )
    }


def test_first_login_picks_starters_and_a_zone_then_goes_straight_in(
    client, user, instruments
):
    response = client.post("/login/?next=/portfolio/", {**LOGIN, "next": "/portfolio/"})
    assert response["Location"] == "/accounts/welcome/?next=%2Fportfolio%2F"
    page = client.get(response["Location"])
    assert "Tech" in page.text and "Index ETFs" in page.text and "Crypto" in page.text

    done = client.post(
        "/accounts/welcome/",
        {
            "starters": ["Tech", "Crypto"],
            "time_zone": "Europe/Berlin",
            "next": "/portfolio/",
        },
    )
    assert done["Location"] == "/portfolio/"
    made = lists(user)
    assert list(made) == ["Tech", "Crypto"]
    assert made["Crypto"] == ["BTC/USD", "ETH/USD", "SOL/USD"]
    assert made["Tech"][:2] == ["AAPL", "MSFT"]
    preferences = preferences_get(user=user)
    assert preferences.time_zone == "Europe/Berlin"
    assert preferences.onboarded_at is not None

    client.logout()
    assert client.post("/login/", LOGIN)["Location"] == "/"


def test_skipping_is_remembered(client, user):
    assert client.post("/login/", LOGIN)["Location"] == "/accounts/welcome/"
    assert client.post("/accounts/welcome/", {"skip": "1"})["Location"] == "/"
    assert lists(user) == {}
    assert preferences_get(user=user).onboarded_at is not None
    client.logout()
    assert client.post("/login/", LOGIN)["Location"] == "/"


def test_an_unknown_zone_is_shown_back_and_nothing_is_made(client, user, instruments):
    client.force_login(user)
    response = client.post(
        "/accounts/welcome/", {"starters": ["Tech"], "time_zone": "Mars/Olympus"}
    )
    assert response.status_code == 200
    assert "Unknown time zone &#x27;Mars/Olympus&#x27;" in response.text
    assert lists(user) == {}
    assert preferences_get(user=user).onboarded_at is None


def test_empty_start_and_an_outside_next_is_ignored(client, user):
    client.force_login(user)
    response = client.post(
        "/accounts/welcome/", {"time_zone": "UTC", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"
    assert lists(user) == {}
    assert preferences_get(user=user).time_zone == "UTC"


def test_staff_and_set_up_accounts_are_not_asked(client, staff_user, user, instruments):
    assert (
        client.post("/login/", {"username": "ops", "password": "s3cret-pass"})[
            "Location"
        ]
        == "/"
    )
    client.logout()
    Watchlist.objects.create(owner=user, name="Mine")  # made by an administrator
    assert client.post("/login/", LOGIN)["Location"] == "/"


def test_onboarding_needs_a_login(client):
    response = client.get("/accounts/welcome/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
