"""Event kinds and multi-condition rules in the engine (a mixin of
`AlertEngine`).

Patterns: when a bar of a timeframe closes for an instrument that pattern
rules watch, `marketdata.patterns.detect` runs once on the frame's last
`LOOKBACK_BARS` bars (for the kinds watched) and every detection confirmed on
that bar (`confirmed_index` = the last bar) reaches the rules of its kind.
Anomalies: the stream worker hands each `marketdata.anomalies.Anomaly` to
`on_anomaly`. Both fire only while the instrument is not stale, with the
rule's cooldown. As conditions of a multi rule they are true from the event
until the next bar of the timeframe closes (pattern) or until the end of the
anomaly's minute.

Multi rules: every state change of a condition (`CrossSeries.flipped`, an
event, an expiry) re-evaluates its rule's expression; it fires on false ->
true only (see `alerts.kinds.multi`).
"""

from __future__ import annotations

import heapq
import logging
from datetime import datetime, timedelta
from decimal import Decimal

from alerts.engine.messages import FiredAlert
from alerts.kinds.events import patterns_module
from core.logs import RateLimitedLog
from core.minutes import MINUTE, floor_minute

logger = logging.getLogger(__name__)
failures = RateLimitedLog(logger)


class Events:
    def on_anomaly(self, anomaly) -> list[FiredAlert]:
        """Fire the anomaly rules (and conditions) of the anomaly's kind and
        instrument. No I/O."""
        fired: list[FiredAlert] = []
        inst = self._instruments.get(anomaly.symbol)
        if inst is None:
            return fired
        series = inst.anomalies.get(anomaly.kind)
        if series is None or not series.rules:
            return fired
        ts = anomaly.ts
        until = floor_minute(ts) + MINUTE
        value = _number(getattr(anomaly, "score", None))
        self._event_hit(inst, series, ts, until, fired, event=anomaly, value=value)
        return fired

    def _patterns_check(self, inst, frame, now: datetime, fired: list) -> None:
        """Run the detector on a just-closed bar of `frame` and fan out."""
        watched = {kind: s for kind, s in frame.patterns.items() if s.rules}
        module = patterns_module()
        if not watched or module is None or not frame.bars:
            return
        bars = list(frame.bars)
        last = len(bars) - 1
        try:
            detections = module.detect(bars, kinds=set(watched))
        except Exception as exc:  # a detector bug must not stop the feed
            failures.warning(
                "patterns", "pattern detection failed for %s", inst.symbol, exc=exc
            )
            return
        step = timedelta(minutes=frame.minutes)
        closed_at = bars[-1]["ts"] + step
        for detection in detections:
            if detection.confirmed_index != last:
                continue
            series = watched.get(detection.kind)
            if series is None:
                continue
            value = _number(getattr(detection, "confidence", None))
            self._event_hit(
                inst,
                series,
                closed_at,
                closed_at + step,
                fired,
                event=detection,
                value=value,
            )

    def _event_hit(self, inst, series, ts, until, fired, *, event, value) -> None:
        """An event for the rules of `series`: single rules fire, conditions
        turn true until `until`."""
        touched = []
        for rule in list(series.rules.values()):
            composite = rule.parent
            if composite is None:
                if inst.live:
                    self._fire(
                        rule, inst, ts, fired, value=value, previous=None, event=event
                    )
                continue
            composite.until[rule.index] = until
            heapq.heappush(self._expiring, (until, composite.rule.id))
            touched.append(composite)
        for composite in touched:
            self._composite_check(composite, ts, fired, quiet=False)

    def _conditions_changed(self, series, ts, fired, *, quiet: bool) -> None:
        subs, series.flipped = series.flipped, []
        seen = set()
        for sub in subs:
            composite = sub.parent
            if composite is None or id(composite) in seen:
                continue
            seen.add(id(composite))
            if self._composites.get(composite.rule.id) is composite:
                self._composite_check(composite, ts, fired, quiet=quiet)

    def _composite_check(self, composite, ts, fired, *, quiet: bool) -> None:
        previous, state = composite.evaluate(ts)
        if quiet or not state or previous is not False:
            return
        rule = composite.rule
        if not composite.live:
            return
        contexts = composite.contexts
        ctx = next((c for c in contexts if c.symbol), contexts[0])
        self._fire(
            rule,
            ctx,
            ts,
            fired,
            value=1.0,
            previous=0.0,
            event=composite.met(ts),
        )

    def _expire(self, now: datetime, fired: list) -> None:
        """Event conditions whose bar/minute is over turn false."""
        while self._expiring and self._expiring[0][0] <= now:
            _until, rule_id = heapq.heappop(self._expiring)
            composite = self._composites.get(rule_id)
            if composite is not None:
                composite.evaluate(now)

    # -- other shards' instruments --------------------------------------------------
    def apply_foreign(self, snapshots: dict[str, dict]) -> list[FiredAlert]:
        """Prices of instruments other shards own (the snapshots of
        `foreign_symbols`): each new last price is applied like a trade of
        size 0, so price, change % and portfolio conditions see it; freshness
        and previous close too."""
        from marketdata.events import Trade

        fired: list[FiredAlert] = []
        for symbol, snapshot in snapshots.items():
            last, ts = snapshot.get("last"), snapshot.get("ts")
            self._apply_snapshot(symbol, snapshot)
            if last in (None, "") or not ts:
                continue
            try:
                at = datetime.fromisoformat(ts)
                price = Decimal(str(last))
            except (TypeError, ValueError, ArithmeticError):
                continue
            inst = self._instrument(symbol)
            if inst.price_decimal == price and inst.minute is not None:
                continue
            trade = Trade(
                symbol=symbol, ts=at, price=price, size=Decimal(0), provider="snapshot"
            )
            self._on_trade(inst, trade, fired)
        return fired


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 1.0
