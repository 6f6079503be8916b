"""The preferences page, the header's theme toggle, the landing view, and
server-rendered times in the display zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import OpsAlert
from marketdata.services import watchlist_create
from preferences.selectors import preferences_get
from preferences.services import preferences_update
from tests.factories import AlertEventFactory

pytestmark = pytest.mark.django_db

PAGE = "/preferences/"


def form(**changes) -> dict:
    data = {
        "zone_mode": "exchange",
        "zone_name": "",
        "theme": "system",
        "landing": "dashboard",
        "notify_toast": "on",
        "notify_email": "on",
        "quiet_start": "",
        "quiet_end": "",
        "quiet_time_zone": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_login_required(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and "/login/" in response.url


def test_save_every_choice(user_client, user):
    tech = watchlist_create(owner=user, name="Tech", symbols=[])
    response = user_client.post(
        PAGE,
        form(
            zone_mode="named",
            zone_name="Europe/Berlin",
            theme="dark",
            landing=f"w{tech.pk}",
            notify_email=None,
            quiet_start="22:00",
            quiet_end="07:00",
            quiet_time_zone="Europe/Berlin",
        ),
        follow=True,
    )
    assert "Preferences saved." in response.content.decode()
    saved = preferences_get(user=user)
    assert saved.time_zone == "Europe/Berlin" and saved.theme == "dark"
    assert saved.landing == "watchlist" and saved.landing_watchlist == tech
    assert saved.notify_toast and not saved.notify_email
    assert (saved.quiet_start.hour, saved.quiet_end.hour) == (22, 7)
    # The page shows back what was saved.
    page = user_client.get(PAGE).content.decode()
    assert 'value="Europe/Berlin"' in page
    assert '<html lang="en" data-theme="dark">' in page


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Berlinn", "utc+2"])
def test_an_unknown_zone_is_refused_with_a_message_and_nothing_saved(
    user_client, user, zone
):
    response = user_client.post(
        PAGE, form(zone_mode="named", zone_name=zone, theme="dark")
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert f"Unknown time zone “{zone}”" in page
    # What was typed stays in the form to be corrected.
    assert f'value="{zone}"' in page
    saved = preferences_get(user=user)
    assert (saved.time_zone, saved.theme) == ("exchange", "system")


def test_an_unknown_quiet_hours_zone_and_half_a_window_are_refused(user_client, user):
    response = user_client.post(
        PAGE, form(quiet_start="22:00", quiet_end="07:00", quiet_time_zone="Nowhere")
    )
    assert response.status_code == 400
    assert "Unknown time zone “Nowhere”" in response.content.decode()
    response = user_client.post(PAGE, form(quiet_start="22:00"))
    assert response.status_code == 400
    assert "both a start and an end" in response.content.decode()
    assert preferences_get(user=user).quiet_start is None


def test_another_users_watchlist_cannot_be_the_landing(user_client, other_user):
    theirs = watchlist_create(owner=other_user, name="Theirs", symbols=[])
    response = user_client.post(PAGE, form(landing=f"w{theirs.pk}"))
    assert response.status_code == 400
    assert "Theirs" not in response.content.decode()


def test_theme_toggle_is_saved_and_applied_to_the_next_page(user_client, user):
    response = user_client.post(
        reverse("preferences:theme"),
        {"theme": "dark"},
        HTTP_ACCEPT="application/json",
    )
    assert response.json() == {"ok": True, "theme": "dark"}
    assert preferences_get(user=user).theme == "dark"
    page = user_client.get(reverse("dashboard:portfolio")).content.decode()
    assert 'data-theme="dark"' in page
    # The header's button offers the next theme in the cycle.
    assert 'value="system" class="icon" id="theme-toggle"' in page

    bad = user_client.post(
        reverse("preferences:theme"), {"theme": "neon"}, HTTP_ACCEPT="application/json"
    )
    assert bad.status_code == 400 and "neon" in bad.json()["error"]
    assert preferences_get(user=user).theme == "dark"


def test_theme_toggle_without_javascript_returns_to_the_page(user_client, user):
    response = user_client.post(
        reverse("preferences:theme"), {"theme": "light", "next": "/portfolio/"}
    )
    assert response.status_code == 302 and response.url == "/portfolio/"
    assert preferences_get(user=user).theme == "light"
    offsite = user_client.post(
        reverse("preferences:theme"), {"theme": "dark", "next": "//evil.example/"}
    )
    assert offsite.url == "/"


def test_landing_view_is_honoured(user_client, user, instruments):
    watchlist_create(owner=user, name="Tech", symbols=["AAPL"])
    crypto = watchlist_create(owner=user, name="Crypto", symbols=["BTC/USD"])
    # Default: the first watchlist.
    assert user_client.get("/").context["active"].name == "Tech"

    preferences_update(user=user, landing="portfolio")
    response = user_client.get("/")
    assert response.status_code == 302 and response.url == "/portfolio/"
    # The nav's Watchlists link and the tabs still reach the watchlists.
    assert user_client.get("/?view=watchlists").status_code == 200
    assert user_client.get(f"/?list={crypto.pk}").context["active"] == crypto

    preferences_update(user=user, landing="watchlist", landing_watchlist=crypto)
    assert user_client.get("/").context["active"] == crypto
    # Deleted since: back to the first list, and other saves still work.
    crypto.delete()
    assert user_client.get("/").context["active"].name == "Tech"
    preferences_update(user=user, theme="dark")


def test_login_lands_on_the_chosen_view(client, user):
    # past the first-login welcome (accounts' onboarding), which comes first
    preferences_update(user=user, landing="portfolio", onboarded_at=timezone.now())
    response = client.post(
        "/login/", {"username": "trader", "password": "s3cret-pass"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/portfolio/"


@pytest.mark.parametrize(
    ("zone", "aapl", "btc"),
    [
        # 14:30 UTC on 15 January: New York is UTC-5.
        ("exchange", "2026-01-15 09:30:00 New York", "2026-01-15 14:30:00 UTC"),
        ("UTC", "2026-01-15 14:30:00 UTC", "2026-01-15 14:30:00 UTC"),
        ("Asia/Tokyo", "2026-01-15 23:30:00 Tokyo", "2026-01-15 23:30:00 Tokyo"),
    ],
)
def test_alert_history_times_follow_the_zone_and_name_it(
    user_client, user, instruments, zone, aapl, btc
):
    ts = datetime(2026, 1, 15, 14, 30, tzinfo=UTC)
    for symbol in ("AAPL", "BTC/USD"):
        AlertEventFactory(
            owner=user,
            instrument=instruments[symbol],
            kind="price",
            ts=ts,
            message=f"{symbol} crossed",
        )
    preferences_update(user=user, time_zone=zone)
    page = user_client.get(reverse("dashboard:alerts")).content.decode()
    assert f">{aapl}</time>" in page
    assert f">{btc}</time>" in page
    assert 'datetime="2026-01-15T14:30:00+00:00"' in page


def test_status_page_times_follow_the_zone(client, staff_user):
    OpsAlert.objects.create(
        key="k1",
        kind="disconnected",
        message="feed down",
        raised_at=datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
    )
    client.force_login(staff_user)
    preferences_update(user=staff_user, time_zone="Europe/Berlin")
    page = client.get(reverse("dashboard:status")).content.decode()
    assert ">2026-07-01 14:00:00 Berlin</time>" in page
    preferences_update(user=staff_user, time_zone="exchange")
    page = client.get(reverse("dashboard:status")).content.decode()
    assert ">2026-07-01 08:00:00 New York</time>" in page


def test_the_page_links_the_sections_other_apps_add(user_client):
    page = user_client.get(PAGE).content.decode()
    assert 'id="prefs-sections"' in page
