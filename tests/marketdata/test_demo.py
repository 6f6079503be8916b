from __future__ import annotations

import pytest
from django.core.management import call_command

from marketdata.models import Position, Watchlist


@pytest.mark.django_db
def test_demo_setup_creates_login_watchlists_and_positions(client, instruments):
    call_command("demo_setup", "--username", "demo", "--password", "demo-pass-123")
    call_command("demo_setup", "--username", "demo", "--password", "demo-pass-123")
    assert client.login(username="demo", password="demo-pass-123")
    names = list(
        Watchlist.objects.filter(owner__username="demo").values_list("name", flat=True)
    )
    assert names == ["Tech", "Index ETFs", "Crypto"]
    tech = Watchlist.objects.get(owner__username="demo", name="Tech")
    assert [i.instrument.symbol for i in tech.items.all()][:3] == [
        "AAPL",
        "MSFT",
        "NVDA",
    ]
    assert Position.objects.filter(owner__username="demo").count() == 4
    response = client.get("/")
    assert response.status_code == 200
    assert "AAPL" in response.content.decode()


@pytest.mark.django_db
def test_pages_require_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
