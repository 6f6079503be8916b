"""Portfolio-value and multi-condition rules fire exactly once on crafted
sequences: not at start-up, not while stale, within cooldown only once."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from alerts.engine import AlertEngine
from alerts.services import alert_events_record, alert_rule_create
from portfolio.services import transaction_add
from tests.alerts.helpers import T0, feed, trade

pytestmark = pytest.mark.django_db


def make_engine(**kwargs) -> AlertEngine:
    engine = AlertEngine(**kwargs)
    engine.reload()
    return engine


def seconds(fired) -> list[float]:
    return [(f.ts - T0).total_seconds() for f in fired]


@pytest.fixture
def book(user, instruments):
    """10 AAPL bought at 100 and 5 MSFT at 200, long before the session."""
    day = date(2024, 4, 1)
    for symbol, quantity, price in (("AAPL", 10, 100), ("MSFT", 5, 200)):
        transaction_add(
            owner=user,
            symbol=symbol,
            kind="buy",
            day=day,
            quantity=Decimal(quantity),
            price=Decimal(price),
        )
    return user


def portfolio_rule(user, **fields):
    fields.setdefault("cooldown_seconds", 0)
    fields.setdefault("direction", "above")
    return alert_rule_create(
        owner=user, instrument=None, kind="portfolio_value", **fields
    )


# --- portfolio value ------------------------------------------------------------------


def test_portfolio_value_fires_once_per_cross_and_not_at_start_up(book):
    rule = portfolio_rule(book, measure="value", level=2600)
    engine = make_engine()
    # AAPL alone: the book is not fully priced yet, nothing is evaluated.
    # MSFT priced: 10×150 + 5×200 = 2500 is the baseline.
    events = [trade("AAPL", 150, 0), trade("MSFT", 200, 1)]
    # 10×160 + 1000 = 2600 crosses; 2610 stays above; back to 2500, then 2700.
    events += [trade("AAPL", p, 2 + i) for i, p in enumerate([160, 161, 150, 170])]
    fired = feed(engine, events)
    assert seconds(fired) == [2.0, 5.0]
    alert = fired[0]
    assert alert.rule_id == rule.pk and alert.kind == "portfolio_value"
    assert alert.instrument_id is None and alert.value == 2600.0
    assert "Portfolio value 2,600.00 crossed above 2600" in alert.message
    events = alert_events_record(fired=fired)
    assert [e.instrument_id for e in events] == [None, None]


def test_portfolio_already_above_at_start_up_does_not_fire(book):
    portfolio_rule(book, measure="value", level=2000)
    engine = make_engine()
    assert feed(engine, [trade("AAPL", 150, 0), trade("MSFT", 200, 1)]) == []
    assert feed(engine, [trade("AAPL", 151, 2)]) == []


def test_portfolio_day_pl_uses_the_ledger_against_previous_close(book):
    portfolio_rule(book, measure="day_pl", level=-100, direction="below")
    engine = make_engine()
    engine.set_prev_close("AAPL", "150")
    engine.set_prev_close("MSFT", "200")
    fired = feed(
        engine,
        [
            trade("AAPL", 150, 0),
            trade("MSFT", 200, 1),  # day P/L 0 (baseline)
            trade("MSFT", 190, 2),  # -50
            trade("AAPL", 145, 3),  # -50 - 50 = -100: crosses below
            trade("AAPL", 140, 4),
        ],
    )
    assert seconds(fired) == [3.0]
    assert fired[0].value == -100.0


def test_portfolio_stale_instrument_suppresses_and_rebaselines(book):
    portfolio_rule(book, measure="value", level=2600)
    engine = make_engine()
    feed(engine, [trade("AAPL", 150, 0), trade("MSFT", 200, 1)])
    engine.set_freshness("MSFT", "stale")
    assert feed(engine, [trade("AAPL", 170, 2)]) == []
    engine.set_freshness("MSFT", "live")
    # First update after the stale gap re-baselines: no fire for the move.
    assert feed(engine, [trade("AAPL", 171, 3)]) == []
    assert seconds(feed(engine, [trade("AAPL", 150, 4), trade("AAPL", 165, 5)])) == [
        5.0
    ]


def test_portfolio_cooldown(book):
    portfolio_rule(book, measure="value", level=2600, cooldown_seconds=60)
    engine = make_engine()
    prices = [150, 160, 150, 160]
    events = [trade("MSFT", 200, 0)] + [
        trade("AAPL", p, 1 + i) for i, p in enumerate(prices)
    ]
    events += [trade("AAPL", 150, 70), trade("AAPL", 160, 71)]
    fired = feed(engine, events)
    assert seconds(fired) == [2.0, 71.0]
    assert engine.suppressed_count == 1


def test_portfolio_rule_validation(user):
    with pytest.raises(ValidationError) as error:
        portfolio_rule(user, measure="", level=None)
    assert "measure" in error.value.message_dict
    assert "level" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        portfolio_rule(user, measure="value", level=-5)
    assert "greater than 0" in str(error.value)


# --- multi-condition --------------------------------------------------------------------


def multi_rule(user, conditions, combine="and", **fields):
    fields.setdefault("cooldown_seconds", 0)
    return alert_rule_create(
        owner=user,
        instrument=None,
        kind="multi",
        combine=combine,
        conditions=conditions,
        **fields,
    )


AAPL_150 = {"kind": "price", "symbol": "AAPL", "direction": "above", "level": "150"}
MSFT_300 = {"kind": "price", "symbol": "MSFT", "direction": "above", "level": "300"}


def test_and_rule_fires_once_when_the_whole_expression_turns_true(user, instruments):
    rule = multi_rule(user, [AAPL_150, MSFT_300])
    engine = make_engine()
    events = [
        trade("AAPL", 149, 0),
        trade("MSFT", 299, 1),  # both known, both false
        trade("AAPL", 151, 2),  # one true
        trade("MSFT", 301, 3),  # both true: fires
        trade("MSFT", 302, 4),  # still true: no fire
        trade("AAPL", 152, 5),
        trade("MSFT", 298, 6),  # false again
        trade("MSFT", 300, 7),  # true again: fires
    ]
    fired = feed(engine, events)
    assert seconds(fired) == [3.0, 7.0]
    alert = fired[0]
    assert alert.rule_id == rule.pk and alert.kind == "multi"
    assert alert.symbol == "AAPL"
    assert alert.message == (
        "All of: AAPL price crosses above 150 and MSFT price crosses above 300"
    )
    [event] = alert_events_record(fired=fired[:1])
    assert event.values["conditions"][1]["symbol"] == "MSFT"


def test_or_rule_fires_on_the_first_true_condition_only(user, instruments):
    multi_rule(user, [AAPL_150, MSFT_300], combine="or")
    engine = make_engine()
    events = [
        trade("AAPL", 149, 0),
        trade("MSFT", 299, 1),
        trade("AAPL", 151, 2),  # true: fires
        trade("MSFT", 301, 3),  # still true: nothing
        trade("AAPL", 140, 4),
        trade("MSFT", 290, 5),  # both false
        trade("MSFT", 305, 6),  # fires
    ]
    assert seconds(feed(engine, events)) == [2.0, 6.0]


def test_multi_rule_true_at_start_up_does_not_fire(user, instruments):
    multi_rule(user, [AAPL_150, MSFT_300])
    engine = make_engine()
    assert feed(engine, [trade("AAPL", 160, 0), trade("MSFT", 310, 1)]) == []
    assert feed(engine, [trade("AAPL", 161, 2)]) == []


def test_multi_rule_stale_instrument_suppresses(user, instruments):
    multi_rule(user, [AAPL_150, MSFT_300])
    engine = make_engine()
    feed(engine, [trade("AAPL", 149, 0), trade("MSFT", 310, 1)])
    engine.set_freshness("MSFT", "stale")
    assert feed(engine, [trade("AAPL", 151, 2)]) == []
    engine.set_freshness("MSFT", "live")
    feed(engine, [trade("AAPL", 149, 3)])
    assert seconds(feed(engine, [trade("AAPL", 151, 4)])) == [4.0]


def test_multi_rule_cooldown(user, instruments):
    multi_rule(user, [AAPL_150, MSFT_300], cooldown_seconds=60)
    engine = make_engine()
    feed(engine, [trade("MSFT", 310, 0)])
    prices = [149, 151, 149, 151]
    fired = feed(engine, [trade("AAPL", p, 1 + i) for i, p in enumerate(prices)])
    assert seconds(fired) == [2.0]
    fired = feed(engine, [trade("AAPL", 149, 70), trade("AAPL", 151, 71)])
    assert seconds(fired) == [71.0]


def test_multi_rule_mixing_kinds_and_a_portfolio(book):
    multi_rule(
        book,
        [
            AAPL_150,
            {"kind": "portfolio_value", "measure": "value", "level": "2600"},
        ],
    )
    engine = make_engine()
    events = [trade("MSFT", 200, 0), trade("AAPL", 149, 1)]  # 2490, false/false
    events += [trade("AAPL", 151, 2)]  # AAPL true, value 2510 false
    events += [trade("MSFT", 225, 3)]  # value 1510 + 1125 = 2635: both true
    assert seconds(feed(engine, events)) == [3.0]


def test_multi_rule_fires_on_the_home_shard_only(user, instruments):
    multi_rule(user, [AAPL_150, MSFT_300])
    shards = [
        make_engine(owns=lambda symbol, mine=mine: (symbol == "AAPL") == mine)
        for mine in (True, False)
    ]
    fired = []
    for engine in shards:
        fired += feed(
            engine,
            [
                trade("AAPL", 149, 0),
                trade("MSFT", 299, 1),
                trade("AAPL", 151, 2),
                trade("MSFT", 301, 3),
            ],
        )
    assert seconds(fired) == [3.0]
    # The home shard reads MSFT (owned elsewhere) from snapshots.
    assert shards[0].foreign_symbols() == {"MSFT"}
    assert shards[1].foreign_symbols() == set()


def test_home_shard_reads_other_instruments_from_snapshots(user, instruments):
    multi_rule(user, [AAPL_150, MSFT_300])
    engine = make_engine(owns=lambda symbol: symbol == "AAPL")
    feed(engine, [trade("AAPL", 151, 0)])
    snap = {"last": "299", "ts": T0.isoformat(), "freshness": "live"}
    assert engine.apply_foreign({"MSFT": snap}) == []
    snap = {**snap, "last": "301", "ts": T0.replace(second=5).isoformat()}
    fired = engine.apply_foreign({"MSFT": snap})
    assert seconds(fired) == [5.0]


def test_malformed_conditions_are_named(user, instruments):
    bad = [
        AAPL_150,
        {"kind": "rsi", "symbol": "MSFT", "level": "150", "timeframe": "1m"},
        {"kind": "price", "symbol": "NOPE", "level": "abc"},
    ]
    with pytest.raises(ValidationError) as error:
        multi_rule(user, bad)
    messages = error.value.message_dict["conditions"]
    assert "Condition 2: An RSI level must be between 0 and 100 (exclusive)." in (
        messages
    )
    assert "Condition 2: The RSI period must be between 2 and 200." in messages
    assert "Condition 3: Level must be a number." in messages
    with pytest.raises(ValidationError) as error:
        multi_rule(user, [AAPL_150] * 6)
    assert "2 to 5 conditions (it has 6)" in str(error.value)


def test_condition_on_a_deleted_instrument_is_explained(user, instruments):
    rule = multi_rule(user, [AAPL_150, MSFT_300])
    from marketdata.models import Instrument

    Instrument.objects.filter(symbol="MSFT").delete()
    rule.refresh_from_db()
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert (
        "Condition 2: the instrument MSFT was deleted; pick another symbol or "
        "remove this condition."
    ) in error.value.message_dict["conditions"]
    # The engine skips nothing silently: the rule still loads and evaluates
    # the instrument by symbol (no events will come for it).
    engine = make_engine()
    assert rule.pk in engine.rules


def test_portfolio_rule_fires_on_one_shard_and_every_shard_streams_its_book(book):
    portfolio_rule(book, measure="value", level=2600)
    home = f"portfolio:{book.pk}"
    shards = [
        make_engine(owns=lambda symbol, mine=mine: (symbol == home) == mine)
        for mine in (True, False)
    ]
    fired = []
    for engine in shards:
        assert engine.watched_symbols() == {"AAPL", "MSFT"}
        events = [trade("AAPL", 150, 0), trade("MSFT", 200, 1), trade("AAPL", 160, 2)]
        fired += feed(engine, events)
    assert seconds(fired) == [2.0]
