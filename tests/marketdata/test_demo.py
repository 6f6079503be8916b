from __future__ import annotations

import socket
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command

from alerts.demo import DEMO_NOTE
from alerts.models import AlertRule
from marketdata.models import Bar, Position, Watchlist
from marketdata.providers.routing import provider_build


@pytest.mark.django_db
def test_demo_setup_creates_login_watchlists_and_positions(
    client, instruments, simulator_settings
):
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


def _rules(kind: str) -> dict[str, Decimal]:
    return {
        r.direction: r.level
        for r in AlertRule.objects.filter(
            owner__username="demo", note=DEMO_NOTE, kind=kind
        )
    }


@pytest.mark.django_db
def test_demo_rules_of_every_kind_sit_around_the_price_now(
    instruments, simulator_settings
):
    call_command("demo_setup", "--username", "demo", "--password", "demo-pass-123")
    btc = instruments["BTC/USD"]
    price = (
        provider_build(name="simulator", instruments=[btc])
        .fetch_snapshots(["BTC/USD"])["BTC/USD"]
        .last
    )
    levels = _rules("price")
    # Both within 0.1 % of the price now, one above and one below it.
    assert abs(levels["above"] / price - 1) < Decimal("0.001")
    assert abs(levels["below"] / price - 1) < Decimal("0.001")
    assert levels["below"] < levels["above"]
    rules = AlertRule.objects.filter(owner__username="demo", note=DEMO_NOTE)
    assert set(rules.values_list("kind", flat=True)) == {
        "price",
        "change_pct",
        "rsi",
        "ma_cross",
        "volume_spike",
    }
    assert rules.filter(kind="price", notify_email=True).count() == 2
    assert rules.get(kind="price", direction="above").owner.email
    # Running setup again replaces the demo rules, it does not add to them.
    call_command("demo_setup", "--username", "demo", "--password", "demo-pass-123")
    assert AlertRule.objects.filter(owner__username="demo").count() == rules.count()


@pytest.mark.django_db
def test_demo_price_rules_fall_back_to_the_latest_stored_close(
    instruments, simulator_settings
):
    simulator_settings.faults.update(rest_500_rate=1.0)  # no snapshots
    btc = instruments["BTC/USD"]
    Bar.objects.create(
        instrument=btc,
        timeframe="1m",
        ts=datetime(2026, 1, 5, 15, 0, tzinfo=UTC),
        open=Decimal("40000"),
        high=Decimal("40100"),
        low=Decimal("39900"),
        close=Decimal("40000"),
        volume=Decimal("1"),
    )
    call_command("demo_setup", "--username", "demo", "--password", "demo-pass-123")
    assert _rules("price") == {"above": Decimal("40020"), "below": Decimal("39980")}


def test_simulator_answering_serves_the_configured_simulator_for_the_block(settings):
    from marketdata.demo import simulator_answering
    from tests.plugins.simulator import free_port

    settings.TAPELINE_PROVIDER = "simulator"
    settings.SIMULATOR_HOST = "127.0.0.1"
    settings.SIMULATOR_PORT = free_port()
    settings.SIMULATOR_SEED = 777
    url = f"http://127.0.0.1:{settings.SIMULATOR_PORT}/_sim/health"
    with simulator_answering():
        health = requests.get(url, timeout=5).json()
    assert (health["seed"], health["hours"]) == (777, "extended")
    with pytest.raises(OSError):  # stopped after the block
        socket.create_connection(("127.0.0.1", settings.SIMULATOR_PORT), timeout=1)
