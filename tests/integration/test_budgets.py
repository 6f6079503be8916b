"""Plan budgets end to end: a stream worker against the real simulator, Redis
and PostgreSQL, with more instruments in use than the plan allows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketdata.models import Instrument, WatchlistItem
from marketdata.services import watchlist_create
from tests.factories import PositionFactory
from tests.integration.test_stream_worker import WorkerThread, sim, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.transactional,
]

__all__ = ["sim"]  # the fixture, imported for this module


def equities(instruments, count: int) -> list[str]:
    return sorted(s for s, i in instruments.items() if i.asset_class == "equity")[
        :count
    ]


def streaming(worker) -> set[str]:
    return set(worker.routes)


def over_limit(worker) -> set[str]:
    return {s for s, st in worker.states.items() if st.freshness == "over_limit"}


def provider_subscriptions(simulator, protocol: str) -> set[str]:
    """What the simulator's sessions of `protocol` hold (its own record)."""
    symbols: set[str] = set()
    for session in list(simulator.sessions):
        if session.provider != protocol:
            continue
        subs = getattr(session, "subs", None) or {}
        if protocol == "alpaca" and getattr(session, "authenticated", False):
            symbols.update(subs.get("trades", []))
        elif protocol == "finnhub":
            symbols.update(subs)
    return symbols


def shows_over_budget_everywhere(worker, client, user, django_user_model) -> None:
    """The dashboard row, the status page and /metrics say which instruments
    wait and why (the worker's own published snapshots and health report)."""
    from streaming.services import feed_health_put

    waiting = sorted(over_limit(worker))
    wait_for(
        lambda: (
            not worker.publisher.dirty or not set(waiting) & set(worker.publisher.dirty)
        ),
        10,
    )
    client.force_login(user)
    page = client.get("/").content.decode()
    for symbol in waiting:
        row = page.split(f'data-symbol="{symbol}"', 1)[1].split("</tr>", 1)[0]
        assert "unsubscribed: over plan limit" in row, symbol
    feed_health_put(worker_id=worker.id, document=worker.health())
    staff = django_user_model.objects.create_user(
        "ops", password="x" * 12, is_staff=True
    )
    client.force_login(staff)
    status = client.get("/status/").content.decode()
    section = status.split('id="subscriptions"', 1)[1].split("</section>", 1)[0]
    assert f"{len(waiting)} over plan limit" in section
    assert ", ".join(waiting) in section
    metrics = client.get("/metrics").content.decode()
    assert (
        f'tapeline_stream_wanted_instruments{{reason="over_budget",shard="0/1",'
        f'worker="{worker.id}"}} {float(len(waiting))}'
    ) in metrics


@pytest.mark.parametrize(
    ("provider", "limit", "wanted"), [("alpaca", 30, 40), ("finnhub", 50, 60)]
)
def test_a_plan_budget_streams_the_first_in_priority_and_shows_the_rest(
    sim, settings, client, user, django_user_model, instruments, provider, limit, wanted
):
    settings.STREAM_SYMBOL_LIMITS = {**settings.STREAM_SYMBOL_LIMITS, provider: limit}
    symbols = equities(instruments, wanted)
    watchlist = watchlist_create(owner=user, name="big", symbols=symbols)
    # Priority: a position first (the last symbol: it would not fit by
    # name), then instruments two users hold, then the rest by symbol.
    PositionFactory(
        owner=user,
        instrument=instruments[symbols[-1]],
        quantity=Decimal(1),
        average_cost=Decimal(1),
    )
    other = django_user_model.objects.create_user("second", password="x" * 12)
    shared = symbols[-6:-1]
    watchlist_create(owner=other, name="shared", symbols=shared)
    expected = {symbols[-1], *shared}
    expected.update([s for s in symbols if s not in expected][: limit - 6])

    with WorkerThread(provider=provider) as worker:
        wait_for(lambda: streaming(worker) == expected, 20)
        assert over_limit(worker) == set(symbols) - expected
        wait_for(lambda: provider_subscriptions(sim, provider) == expected, 20)
        document = worker.health()["subscriptions"]
        assert document["counts"] == {
            "streaming": limit,
            "over_budget": wanted - limit,
            "rejected": 0,
            "no_provider": 0,
        }
        assert not Instrument.objects.exclude(stream_error="").exists()
        shows_over_budget_everywhere(worker, client, user, django_user_model)

        # Five streaming instruments leave: the next five in priority take
        # their places on the next subscription step.
        leaving = sorted(expected - {symbols[-1], *shared})[:5]
        WatchlistItem.objects.filter(
            watchlist=watchlist, instrument__symbol__in=leaving
        ).delete()
        waiting = sorted(set(symbols) - expected)
        refill = (expected - set(leaving)) | set(waiting[:5])
        wait_for(lambda: streaming(worker) == refill, 10)
        assert over_limit(worker) == set(waiting[5:])
        wait_for(lambda: provider_subscriptions(sim, provider) == refill, 10)


@pytest.mark.parametrize(
    ("provider", "cap", "wanted"), [("alpaca", 30, 40), ("finnhub", 50, 60)]
)
def test_a_plan_smaller_than_configured_teaches_its_limit_and_marks_nothing(
    sim, settings, user, instruments, provider, cap, wanted
):
    """The budget is set too high (none): the provider refuses with its
    plan-limit error (Alpaca 405, Finnhub "Subscribing to too many
    symbols"); the worker settles on what the provider accepts and shows the
    rest as over the plan limit, never as rejected."""
    settings.STREAM_SYMBOL_LIMITS = {**settings.STREAM_SYMBOL_LIMITS, provider: 0}
    sim.faults.update(symbol_caps={provider: cap})
    symbols = equities(instruments, wanted)
    watchlist_create(owner=user, name="big", symbols=symbols)

    with WorkerThread(provider=provider) as worker:

        def learned():
            [budget] = worker.health()["subscriptions"]["budgets"]
            return budget["learned_limit"]

        wait_for(
            lambda: (
                learned() == cap
                and len(streaming(worker)) == cap
                and len(over_limit(worker)) == wanted - cap
            ),
            40,
        )
        wait_for(lambda: provider_subscriptions(sim, provider) == streaming(worker), 20)
        assert streaming(worker) == set(symbols[:cap])  # priority: by symbol
        assert not Instrument.objects.exclude(stream_error="").exists()
