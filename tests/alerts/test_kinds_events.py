"""Pattern and anomaly rules (and as conditions), and the dry run of every
new kind. `marketdata.patterns` / `marketdata.anomalies` are written in
parallel: these tests plant small fakes with their documented interfaces;
`test_real_*` run against the real modules once they exist."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from alerts.backtest import rule_dry_run
from alerts.engine import AlertEngine
from alerts.services import alert_rule_create
from marketdata.services import bars_upsert
from tests.alerts.helpers import T0, bar, feed, trade
from tests.factories import minute_bars

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Detection:
    kind: str
    label: str
    direction: str
    points: list
    confirmed_index: int
    confirmed_at: datetime
    confidence: float
    explain: str


@dataclass(frozen=True)
class Anomaly:
    symbol: str
    kind: str
    ts: datetime
    score: float
    value: float
    baseline: float
    direction: str
    explain: str


def fake_detect(bars, *, kinds=None):
    """A "double bottom" on every bar whose high reaches 200 (planted)."""
    found = []
    for index, b in enumerate(bars):
        if float(b["high"]) >= 200 and (kinds is None or "double_bottom" in kinds):
            found.append(
                Detection(
                    "double_bottom",
                    "Double bottom",
                    "bullish",
                    [],
                    index,
                    b["ts"],
                    0.8,
                    "planted",
                )
            )
    return found


@dataclass
class FakeAnomalyDetector:
    """A volume surge on every minute with volume ≥ 5000 (planted)."""

    symbol: str = ""
    seen: list = field(default_factory=list)

    def on_minute(self, b) -> list:
        volume = float(b.volume)
        if volume < 5000:
            return []
        return [
            Anomaly(self.symbol, "volume_surge", b.ts, 9.0, volume, 100.0, "up", "x")
        ]


@pytest.fixture
def detectors(monkeypatch):
    import marketdata

    patterns = types.ModuleType("marketdata.patterns")
    patterns.detect = fake_detect
    patterns.PATTERN_KINDS = {"double_bottom": "Double bottom", "flag": "Flag"}
    patterns.LOOKBACK_BARS = 50
    anomalies = types.ModuleType("marketdata.anomalies")
    anomalies.Anomaly = Anomaly
    anomalies.AnomalyDetector = FakeAnomalyDetector
    anomalies.ANOMALY_KINDS = ("return_spike", "volume_surge", "trade_rate_surge")
    for name, module in (("patterns", patterns), ("anomalies", anomalies)):
        monkeypatch.setitem(sys.modules, f"marketdata.{name}", module)
        monkeypatch.setattr(marketdata, name, module, raising=False)


def store(instrument, closes, *, start, volumes=None, highs=None) -> None:
    rows = minute_bars(instrument, closes, start=start, volumes=volumes, highs=highs)
    bars_upsert(rows=rows, provider="test")


def seconds(fired) -> list[float]:
    return [(f.ts - T0).total_seconds() for f in fired]


def pattern_rule(user, instrument, **fields):
    fields.setdefault("cooldown_seconds", 0)
    fields.setdefault("timeframe", "5m")
    return alert_rule_create(
        owner=user,
        instrument=instrument,
        kind="pattern",
        pattern="double_bottom",
        **fields,
    )


def planted_bar(symbol, minute, high=None):
    event = bar(symbol, minute, 100)
    if high is None:
        return event
    from msgspec.structs import replace

    return replace(event, high=Decimal(high))


# --- patterns -------------------------------------------------------------------------


def test_pattern_fires_once_on_the_bar_that_confirms(user, instruments, detectors):
    aapl = instruments["AAPL"]
    store(aapl, [100] * 60, start=T0 - timedelta(minutes=60))
    rule = pattern_rule(user, aapl)
    engine = AlertEngine()
    engine.reload()
    events = [planted_bar("AAPL", m, 201 if m == 7 else None) for m in range(15)]
    fired = feed(engine, events)
    # Bucket 14:35-14:40 holds the planted high; it closes at 14:40.
    assert seconds(fired) == [600.0]
    alert = fired[0]
    assert alert.rule_id == rule.pk and alert.kind == "pattern"
    assert alert.message == "AAPL Double bottom confirmed on 5m: planted"
    assert alert.values["confidence"] == 0.8


def test_pattern_in_stored_history_does_not_fire_at_start_up(
    user, instruments, detectors
):
    aapl = instruments["AAPL"]
    highs = [None] * 60
    highs[-3] = 205  # a detection confirmed in the history loaded at start
    store(aapl, [100] * 60, start=T0 - timedelta(minutes=60), highs=highs)
    pattern_rule(user, aapl)
    engine = AlertEngine()
    engine.reload()
    assert feed(engine, [planted_bar("AAPL", m) for m in range(10)]) == []


def test_pattern_stale_and_cooldown(user, instruments, detectors):
    aapl = instruments["AAPL"]
    store(aapl, [100] * 10, start=T0 - timedelta(minutes=10))
    pattern_rule(user, aapl, cooldown_seconds=900)
    engine = AlertEngine()
    engine.reload()
    engine.set_freshness("AAPL", "stale")
    assert feed(engine, [planted_bar("AAPL", m, 201) for m in range(5)]) == []
    engine.set_freshness("AAPL", "live")
    fired = feed(engine, [planted_bar("AAPL", m, 201) for m in range(5, 20)])
    assert seconds(fired) == [600.0]  # 14:45 and 14:50 are within the cooldown
    fired = feed(engine, [planted_bar("AAPL", m, 201) for m in range(20, 30)])
    assert seconds(fired) == [1500.0]


def test_pattern_needs_stored_bars_and_a_known_kind(user, instruments, detectors):
    with pytest.raises(ValidationError) as error:
        pattern_rule(user, instruments["MSFT"])
    assert "No 5m bars are stored for MSFT" in str(error.value)
    with pytest.raises(ValidationError) as error:
        alert_rule_create(
            owner=user,
            instrument=instruments["MSFT"],
            kind="pattern",
            pattern="cup",
            timeframe="5m",
        )
    assert "Choose a pattern: double_bottom, flag." in str(error.value)


def test_pattern_without_a_detector_is_refused(user, instruments, monkeypatch):
    import marketdata

    monkeypatch.setitem(sys.modules, "marketdata.patterns", None)
    monkeypatch.delattr(marketdata, "patterns", raising=False)
    with pytest.raises(ValidationError) as error:
        pattern_rule(user, instruments["AAPL"])
    assert "Pattern detection is not available on this server." in str(error.value)


# --- anomalies ------------------------------------------------------------------------


def anomaly_rule(user, instrument, **fields):
    fields.setdefault("cooldown_seconds", 0)
    return alert_rule_create(
        owner=user, instrument=instrument, kind="anomaly", **fields
    )


def surge(symbol="AAPL", seconds_=0, kind="volume_surge"):
    return Anomaly(
        symbol, kind, T0 + timedelta(seconds=seconds_), 7.5, 9000, 1000, "up", "9×"
    )


def test_anomaly_fires_for_its_kind_and_instrument_only(user, instruments):
    rule = anomaly_rule(user, instruments["AAPL"], anomaly="volume_surge")
    engine = AlertEngine()
    engine.reload()
    assert engine.on_anomaly(surge(kind="return_spike")) == []
    assert engine.on_anomaly(surge(symbol="MSFT")) == []
    [alert] = engine.on_anomaly(surge())
    assert alert.rule_id == rule.pk and alert.kind == "anomaly"
    assert alert.message == "AAPL volume surge: 9×"
    assert alert.values["score"] == 7.5


def test_anomaly_stale_and_cooldown(user, instruments):
    anomaly_rule(
        user, instruments["AAPL"], anomaly="volume_surge", cooldown_seconds=120
    )
    engine = AlertEngine()
    engine.reload()
    engine.set_freshness("AAPL", "stale")
    assert engine.on_anomaly(surge()) == []
    engine.set_freshness("AAPL", "live")
    assert len(engine.on_anomaly(surge(seconds_=10))) == 1
    assert engine.on_anomaly(surge(seconds_=60)) == []
    assert len(engine.on_anomaly(surge(seconds_=200))) == 1


def test_anomaly_condition_is_true_for_its_minute(user, instruments):
    alert_rule_create(
        owner=user,
        instrument=None,
        kind="multi",
        combine="and",
        cooldown_seconds=0,
        conditions=[
            {"kind": "price", "symbol": "AAPL", "direction": "above", "level": "150"},
            {"kind": "anomaly", "symbol": "MSFT", "anomaly": "volume_surge"},
        ],
    )
    engine = AlertEngine()
    engine.reload()
    feed(engine, [trade("AAPL", 149, 0), trade("AAPL", 151, 1)])
    # The anomaly makes the expression true: fires once.
    assert seconds(engine.on_anomaly(surge("MSFT", 5))) == [5.0]
    # Still in the anomaly's minute: AAPL dips and comes back -> fires again.
    fired = feed(engine, [trade("AAPL", 149, 20), trade("AAPL", 151, 30)])
    assert seconds(fired) == [30.0]
    # The next minute the anomaly condition is false again.
    assert feed(engine, [trade("AAPL", 149, 61), trade("AAPL", 151, 62)]) == []


def test_anomaly_rule_validation(user, instruments):
    with pytest.raises(ValidationError) as error:
        anomaly_rule(user, instruments["AAPL"], anomaly="meteor")
    assert "Choose an anomaly: " in str(error.value)


# --- dry runs ---------------------------------------------------------------------------


END = T0 + timedelta(days=1)


def test_dry_run_multi_condition(user, instruments):
    start = END - timedelta(hours=3)
    aapl = [100] * 180
    aapl[100:110] = [110] * 10
    aapl[150:160] = [110] * 10
    msft = [200] * 180
    msft[140:170] = [150] * 30  # MSFT condition false around the second bump
    store(instruments["AAPL"], aapl, start=start)
    store(instruments["MSFT"], msft, start=start)
    rule = alert_rule_create(
        owner=user,
        instrument=None,
        kind="multi",
        combine="and",
        cooldown_seconds=0,
        conditions=[
            {"kind": "price", "symbol": "AAPL", "direction": "above", "level": "105"},
            {"kind": "price", "symbol": "MSFT", "direction": "above", "level": "180"},
        ],
    )
    result = rule_dry_run(rule=rule, days=1, now=END)
    assert result.symbols == ["AAPL", "MSFT"]
    assert [f.ts for f in result.fired] == [start + timedelta(minutes=100)]


def test_dry_run_portfolio(user, instruments):
    from datetime import date

    from portfolio.services import transaction_add

    transaction_add(
        owner=user,
        symbol="AAPL",
        kind="buy",
        day=date(2024, 1, 2),
        quantity=Decimal(10),
        price=Decimal(90),
    )
    start = END - timedelta(hours=2)
    closes = [100] * 120
    closes[60] = 130
    store(instruments["AAPL"], closes, start=start)
    rule = alert_rule_create(
        owner=user,
        instrument=None,
        kind="portfolio_value",
        measure="value",
        direction="above",
        level=1200,
        cooldown_seconds=0,
    )
    result = rule_dry_run(rule=rule, days=1, now=END)
    assert [f.ts for f in result.fired] == [start + timedelta(minutes=60)]
    assert "Portfolio values use the positions as held today." in result.notes


def test_dry_run_pattern_and_anomaly(user, instruments, detectors):
    aapl = instruments["AAPL"]
    start = END - timedelta(hours=2)
    highs = [None] * 120
    highs[62] = 250
    volumes = [100] * 120
    volumes[90] = 9000
    store(aapl, [100] * 120, start=start, highs=highs, volumes=volumes)
    pattern = pattern_rule(user, aapl)
    anomaly = anomaly_rule(user, aapl, anomaly="volume_surge")
    fired = rule_dry_run(rule=pattern, days=1, now=END).fired
    # The planted minute is in the 5m bucket start+60..65, closing at +65.
    assert [f.ts for f in fired] == [start + timedelta(minutes=65)]
    fired = rule_dry_run(rule=anomaly, days=1, now=END).fired
    assert [f.ts for f in fired] == [start + timedelta(minutes=90)]


def test_real_detectors_plug_in(user, instruments):
    patterns = pytest.importorskip("marketdata.patterns")
    anomalies = pytest.importorskip("marketdata.anomalies")
    store(instruments["AAPL"], [100] * 30, start=T0 - timedelta(minutes=30))
    kind = next(iter(patterns.PATTERN_KINDS))
    pattern_rule_ = alert_rule_create(
        owner=user,
        instrument=instruments["AAPL"],
        kind="pattern",
        pattern=kind,
        timeframe="1m",
    )
    assert kind in pattern_rule_.describe() or patterns.PATTERN_KINDS[kind] in (
        pattern_rule_.describe()
    )
    name = next(iter(anomalies.ANOMALY_KINDS))
    anomaly_rule(user, instruments["AAPL"], anomaly=name)


@pytest.mark.parametrize("with_rsi", [False, True])
def test_pattern_detector_sees_the_stored_history(
    user, instruments, detectors, monkeypatch, with_rsi
):
    """The detector gets the stored bars on the first live close, also when
    the frame was already built for an indicator rule."""
    seen = []

    def detect(bars, *, kinds=None):
        seen.append(len(bars))
        return fake_detect(bars, kinds=kinds) if len(bars) >= 30 else []

    monkeypatch.setattr(sys.modules["marketdata.patterns"], "detect", detect)
    aapl = instruments["AAPL"]
    store(aapl, [100] * 60, start=T0 - timedelta(minutes=60))
    if with_rsi:
        alert_rule_create(
            owner=user,
            instrument=aapl,
            kind="rsi",
            level=70,
            timeframe="1m",
            period=14,
        )
    engine = AlertEngine()
    engine.reload()
    pattern_rule(user, aapl, timeframe="1m")
    engine.reload()
    fired = feed(engine, [planted_bar("AAPL", 0, 201)])
    assert seen == [50]  # LOOKBACK_BARS of the fake
    assert seconds(fired) == [60.0]
