"""In-memory alert evaluation, run inside the stream worker.

How the stream worker uses it (`streaming.alerting`; one engine per shard)::

    engine = AlertEngine(owns=shard.owns)   # all rules; multi/portfolio fire on
    engine.reload()                         # the shard owning their home symbol
    ...
    fired = engine.on_event(event)          # every normalized event; no I/O
    fired += engine.on_anomaly(anomaly)     # marketdata.anomalies events
    engine.set_freshness(symbol, "stale")   # live | stale | closed | halted
    engine.set_prev_close(symbol, close)    # each alert step, from the worker
    fired += engine.on_clock(now)           # closes quiet minutes
    changes = engine.fetch_changes()        # on the database thread ...
    engine.apply_changes(changes)           # ... applied on the loop (None: none)
    fired += engine.apply_foreign(snapshots)   # other shards' prices, read from
                                               # the snapshot store for
                                               # engine.foreign_symbols()

Layers (each ≲400 lines): `index` (EngineRule, the sorted `CrossSeries`),
`trackers` (minute/timeframe bars, RSI, MA, volume, per-instrument state),
`series` (building the series a kind watches), `composite` (portfolio
values, multi-condition state), `events` (pattern,
anomaly and multi-condition evaluation), `loading` (change detection, DB
reload, warm-up seeds), `messages` (`FiredAlert`), `core` (`AlertEngine`).
What differs per rule kind (fields, checks, series key, warm-up, message)
lives in `alerts.kinds`.

Semantics: a level rule fires on the tick whose value crosses its level
(`CrossSeries`), then re-arms past `level ∓ hysteresis`; a rule already
beyond its level when loaded (start-up, edit, resume after a stale feed)
starts waiting, so nothing fires for a cross it did not see. Cooldown
suppresses a fire within `cooldown_seconds` of the previous one (market
time). One-shot rules leave the index when they fire. Nothing fires while an
instrument is "stale"; on leaving it the values re-baseline. Indicators use
closed bars: 1-minute bars from trades (or the provider's), rolled up into
clock-aligned 5m/15m/1h buckets; `on_clock(now)` closes quiet minutes; with
`seed_from_db=True` new rules are warmed up from stored history.

Scale-out: every shard loads every rule (the worker streams every symbol a
rule reads, `watched_symbols`) but events reach a shard only for the
instruments it owns, so a single-instrument rule fires on exactly one shard.
A multi-condition or portfolio rule fires only on the shard owning its home
symbol (`EngineRule.home`: the first condition's instrument, else
"portfolio:<owner id>" hashed like a symbol); that shard reads the other
instruments' last price, previous close and freshness from the Redis
snapshot store the workers write (`foreign_symbols`/`apply_foreign`, each
worker step), so those conditions lag by at most a step. Indicator, volume,
pattern and anomaly conditions on another shard's instrument see only those
snapshot prices (no volume, no anomaly events): put such a condition first
to make its instrument the home.
"""

from alerts.engine.core import AlertEngine
from alerts.engine.index import CrossSeries, EngineRule
from alerts.engine.loading import RuleChanges, Seed, history_minutes
from alerts.engine.messages import FiredAlert

__all__ = [
    "AlertEngine",
    "CrossSeries",
    "EngineRule",
    "FiredAlert",
    "RuleChanges",
    "Seed",
    "history_minutes",
]
