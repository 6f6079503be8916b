"""In-memory alert evaluation, run inside the stream worker.

Use (one engine per stream-worker shard)::

    engine = AlertEngine(symbols={"AAPL", "BTC/USD", ...})  # the shard's symbols
    engine.reload()                      # load active rules (sync code, DB access)
    ...
    fired = engine.on_event(event, snapshot)   # every normalized event; no I/O
    if fired:
        alerts.services.alert_events_record(fired=fired)
    engine.maybe_reload()                # ≥ once a second; cheap when nothing changed
    engine.set_freshness(symbol, "stale")      # live | stale | closed | halted

From asyncio code use ``await engine.areload()`` / ``await engine.amaybe_reload()``:
they read Redis and the database in a thread and apply the result on the calling
thread, so `on_event` never races an index update. `on_event`, `on_clock`,
`set_freshness` and `set_prev_close` do no I/O and may be called from the loop.

Every rule is "a value crosses a level" (see `alerts.models.AlertRule`). Per
instrument and per value (last price, change %, RSI(p) on a timeframe, fast-slow
MA difference, volume ratio) a `CrossSeries` keeps its rules in four sorted
lists: armed and waiting, for "above" and for "below". When the value moves
from `prev` to `cur`, only rules whose level lies between the two are touched
(bisect), so a tick costs O(log rules + rules that change state), whatever the
number of rules that cannot fire.

Cross semantics: an "above" rule fires when the value goes from below its level
to at or above it (level in (prev, cur]); it then waits until the value drops
below `level - hysteresis` before it can fire again. A rule whose value is
already beyond the level when it is loaded (start-up, edit, resume after a
stale feed) starts waiting, so it never fires for a cross it did not see.
Cooldown suppresses a fire (the cross is consumed) within `cooldown_seconds`
of the previous one, measured in market time. One-shot rules are removed from
the index when they fire; `alert_events_record` deactivates them in the DB.

Change detection: every write in `alerts.services` (and any ORM save/delete of
a rule, via signals) bumps a Redis counter and records the rule id in a sorted
set scored by that counter; `maybe_reload` reads both in one round trip and
reloads only the changed rules.

Indicator values come from closed bars: the engine aggregates 1-minute bars
from trades (or takes the provider's closed 1-minute bars when it sends them)
and rolls them up into 5m/15m/1h buckets aligned to the clock (UTC epoch, as
the database's `date_bin`). Quiet minutes are closed by `on_clock(now)`. With
`seed_from_db=True` new RSI/MA/volume rules are warmed up from stored history:
closed buckets resampled by the database plus the minutes of the open bucket.
Rules that are not "stale" keep firing across a closed market or a halt: a
gap over the level at the next open is a real cross; only a stale feed (data
missing, not absent) re-baselines.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from marketdata.indicators import EMA, RSI, SMA

logger = logging.getLogger(__name__)

INF = math.inf
ABOVE = "above"
BELOW = "below"
MINUTE = timedelta(minutes=1)
TIMEFRAME_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}
# Closed minute bars kept in memory per instrument (for warming new trackers).
RECENT_MINUTES = 180
MAX_SEED_MINUTES = 20_000
MAX_FRAME_HISTORY = 2_000


# --- what the engine emits -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FiredAlert:
    """One rule firing on one event. Plain data; `values` is JSON-safe."""

    rule_id: int
    owner_id: int
    instrument_id: int
    symbol: str
    kind: str
    direction: str
    level: float | None
    ts: datetime
    price: Decimal | None
    value: float
    previous: float
    values: dict
    message: str
    note: str = ""
    notify_email: bool = False
    one_shot: bool = False
    #: set when queued for recording: an idempotency key and the wall time
    key: str = ""
    fired_at: datetime | None = None


# --- rules and the sorted index ---------------------------------------------------


@dataclass(slots=True, eq=False)
class EngineRule:
    """A rule as the engine holds it (built from `alerts.selectors` rows)."""

    id: int
    owner_id: int
    instrument_id: int
    symbol: str
    kind: str
    direction: str
    level: float
    band: float = 0.0
    timeframe: str = ""
    period: int | None = None
    fast_period: int | None = None
    slow_period: int | None = None
    ma_type: str = ""
    cooldown: float = 0.0
    one_shot: bool = False
    notify_email: bool = False
    note: str = ""
    last_fired: datetime | None = None
    # Index bookkeeping: which list of which series holds the rule, under what key.
    series: CrossSeries | None = field(default=None, repr=False)
    slot: str = ""
    key: float = 0.0

    @property
    def series_key(self) -> tuple:
        if self.kind == "price":
            return ("price",)
        if self.kind == "change_pct":
            return ("change_pct",)
        if self.kind == "rsi":
            return ("rsi", self.timeframe, self.period)
        if self.kind == "ma_cross":
            return (
                "ma",
                self.timeframe,
                self.ma_type,
                self.fast_period,
                self.slow_period,
            )
        if self.kind == "volume_spike":
            return ("volume", self.period)
        raise ValueError(f"unknown rule kind {self.kind!r}")

    def signature(self) -> tuple:
        """What decides where the rule sits in the index."""
        return (self.symbol, self.series_key, self.direction, self.level, self.band)

    @classmethod
    def from_row(cls, row: dict) -> EngineRule:
        level = row.get("level")
        kind = row["kind"]
        return cls(
            id=row["id"],
            owner_id=row["owner_id"],
            instrument_id=row["instrument_id"],
            symbol=row["symbol"],
            kind=kind,
            direction=row["direction"],
            level=0.0 if kind == "ma_cross" or level is None else float(level),
            band=float(row.get("hysteresis") or 0),
            timeframe=row.get("timeframe") or "",
            period=row.get("period"),
            fast_period=row.get("fast_period"),
            slow_period=row.get("slow_period"),
            ma_type=row.get("ma_type") or "",
            cooldown=float(row.get("cooldown_seconds") or 0),
            one_shot=bool(row.get("one_shot")),
            notify_email=bool(row.get("notify_email")),
            note=row.get("note") or "",
            last_fired=row.get("last_fired_at"),
        )


class _Slot:
    """Rules sorted by key: parallel lists, so bisect compares plain floats."""

    __slots__ = ("keys", "ids")

    def __init__(self) -> None:
        self.keys: list[float] = []
        self.ids: list[int] = []

    def __len__(self) -> int:
        return len(self.keys)

    def insert(self, key: float, rule_id: int) -> None:
        index = bisect_right(self.keys, key)
        self.keys.insert(index, key)
        self.ids.insert(index, rule_id)

    def delete(self, key: float, rule_id: int) -> None:
        keys, ids = self.keys, self.ids
        index = bisect_left(keys, key)
        while index < len(keys) and keys[index] == key:
            if ids[index] == rule_id:
                del keys[index]
                del ids[index]
                return
            index += 1

    def take(self, low: float, high: float, right: bool) -> list[int]:
        """Remove and return ids with key in (low, high] (right=True) or
        [low, high) (right=False)."""
        keys = self.keys
        if right:
            start = bisect_right(keys, low)
            if start == len(keys) or keys[start] > high:
                return []
            stop = bisect_right(keys, high, start)
        else:
            start = bisect_left(keys, low)
            if start == len(keys) or keys[start] >= high:
                return []
            stop = bisect_left(keys, high, start)
        taken = self.ids[start:stop]
        del keys[start:stop]
        del self.ids[start:stop]
        return taken


class CrossSeries:
    """One tracked value of one instrument and the rules watching it."""

    __slots__ = (
        "value",
        "epoch",
        "up_armed",
        "up_waiting",
        "down_armed",
        "down_waiting",
        "rules",
        "pending",
    )

    def __init__(self) -> None:
        self.value: float | None = None
        self.epoch = 0
        # Armed: key = level. Waiting: key = the level the value must pass
        # back over to re-arm (level -/+ hysteresis).
        self.up_armed = _Slot()
        self.up_waiting = _Slot()
        self.down_armed = _Slot()
        self.down_waiting = _Slot()
        self.rules: dict[int, EngineRule] = {}
        self.pending: set[int] = set()

    def __len__(self) -> int:
        return len(self.rules)

    # index maintenance
    def _place(self, rule: EngineRule, slot: str, key: float) -> None:
        rule.slot, rule.key = slot, key
        getattr(self, slot).insert(key, rule.id)

    def _classify(self, rule: EngineRule, value: float) -> None:
        """Place a rule seeing `value` for the first time (no fire)."""
        if rule.direction == ABOVE:
            if value < rule.level:
                self._place(rule, "up_armed", rule.level)
            else:
                self._place(rule, "up_waiting", rule.level - rule.band)
        else:
            if value > rule.level:
                self._place(rule, "down_armed", rule.level)
            else:
                self._place(rule, "down_waiting", rule.level + rule.band)

    def add(self, rule: EngineRule) -> None:
        rule.series = self
        self.rules[rule.id] = rule
        if self.value is None:
            rule.slot = ""
            self.pending.add(rule.id)
        else:
            self._classify(rule, self.value)

    def remove(self, rule: EngineRule) -> None:
        self.rules.pop(rule.id, None)
        if rule.slot:
            getattr(self, rule.slot).delete(rule.key, rule.id)
        else:
            self.pending.discard(rule.id)
        rule.series, rule.slot = None, ""

    def update(self, value: float) -> list[EngineRule]:
        """Set a new value; return the rules whose level it crossed."""
        previous = self.value
        self.value = value
        if previous is None:
            if self.pending:
                for rule_id in self.pending:
                    self._classify(self.rules[rule_id], value)
                self.pending.clear()
            return []
        if value > previous:
            crossed = self._move(self.up_armed, previous, value, True, "up_waiting")
            if self.down_waiting.keys:
                self._move(self.down_waiting, previous, value, False, "down_armed")
            return crossed
        if value < previous:
            crossed = self._move(
                self.down_armed, value, previous, False, "down_waiting"
            )
            if self.up_waiting.keys:
                self._move(self.up_waiting, value, previous, True, "up_armed")
            return crossed
        return []

    def _move(
        self, entries: _Slot, low: float, high: float, right: bool, to: str
    ) -> list[EngineRule]:
        """Move the rules with key in (low, high] (right=True) or [low, high)
        (right=False) to slot `to`; return them."""
        if not entries.keys:
            return []
        taken = entries.take(low, high, right)
        if not taken:
            return []
        moved = [self.rules[rule_id] for rule_id in taken]
        for rule in moved:
            if to == "up_waiting":
                key = rule.level - rule.band
            elif to == "down_waiting":
                key = rule.level + rule.band
            else:
                key = rule.level
            self._place(rule, to, key)
        return moved


# --- value trackers ---------------------------------------------------------------


class _RSITracker:
    __slots__ = ("state", "history")

    def __init__(self, period: int) -> None:
        self.state = RSI(period)
        self.history = 10 * period + 1

    def on_bar(self, close: float) -> float | None:
        value = self.state.update(close)
        return None if value != value else value


class _MATracker:
    __slots__ = ("fast", "slow", "history")

    def __init__(self, ma_type: str, fast: int, slow: int) -> None:
        kind = EMA if ma_type == "ema" else SMA
        self.fast = kind(fast)
        self.slow = kind(slow)
        self.history = slow * (5 if ma_type == "ema" else 1) + 1

    def on_bar(self, close: float) -> float | None:
        fast = self.fast.update(close)
        slow = self.slow.update(close)
        if fast != fast or slow != slow:
            return None
        return fast - slow


class _Frame:
    """Rolls closed minute bars up into one timeframe and feeds its trackers."""

    __slots__ = ("minutes", "bucket", "close", "last_minute", "closes", "trackers")

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self.bucket: datetime | None = None
        self.close = 0.0
        self.last_minute: datetime | None = None
        self.closes: deque[float] = deque(maxlen=MAX_FRAME_HISTORY)
        self.trackers: list[tuple[object, CrossSeries]] = []

    def bucket_of(self, ts: datetime) -> datetime:
        if self.minutes == 1:
            return ts
        epoch_minutes = int(ts.timestamp() // 60)
        return ts - timedelta(minutes=epoch_minutes % self.minutes)

    def on_minute(self, ts: datetime, close: float) -> list[tuple[CrossSeries, float]]:
        """Feed one closed minute; return (series, value) for each tracker that
        produced a value on a bucket closing."""
        if self.last_minute is not None and ts <= self.last_minute:
            return []
        self.last_minute = ts
        bucket = self.bucket_of(ts)
        updates: list[tuple[CrossSeries, float]] = []
        if self.bucket is not None and bucket != self.bucket:
            updates.extend(self._close_bucket())
        self.bucket = bucket
        self.close = close
        if ts + MINUTE >= bucket + timedelta(minutes=self.minutes):
            updates.extend(self._close_bucket())
        return updates

    def _close_bucket(self) -> list[tuple[CrossSeries, float]]:
        if self.bucket is None:
            return []
        close = self.close
        self.bucket = None
        self.closes.append(close)
        updates = []
        for tracker, series in self.trackers:
            value = tracker.on_bar(close)
            if value is not None:
                updates.append((series, value))
        return updates


class _VolumeTracker:
    """Current minute volume over the average of the last `period` minutes."""

    __slots__ = ("period", "volumes", "average")

    def __init__(self, period: int) -> None:
        self.period = period
        self.volumes: deque[float] = deque(maxlen=period)
        self.average = 0.0

    def on_minute_closed(self, volume: float) -> None:
        self.volumes.append(volume)
        self.average = math.fsum(self.volumes) / len(self.volumes)

    def ratio(self, volume: float) -> float | None:
        if len(self.volumes) < self.period or self.average <= 0:
            return None
        return volume / self.average


# --- per-instrument state -------------------------------------------------------


class _Instrument:
    __slots__ = (
        "symbol",
        "instrument_id",
        "price",
        "price_decimal",
        "prev_close",
        "live",
        "epoch",
        "saw_trade",
        "bars_feed",
        "minute",
        "minute_close",
        "minute_volume",
        "last_closed",
        "recent",
        "series",
        "frames",
        "volumes",
        "seeded",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.instrument_id = 0
        self.price: float | None = None
        self.price_decimal: Decimal | None = None
        self.prev_close: float | None = None
        self.live = True
        self.epoch = 0
        self.saw_trade = False
        self.bars_feed = False
        self.minute: datetime | None = None
        self.minute_close = 0.0
        self.minute_volume = 0.0
        self.last_closed: datetime | None = None
        # (ts, close, volume) of recently closed minutes, oldest first.
        self.recent: deque[tuple[datetime, float, float]] = deque(maxlen=RECENT_MINUTES)
        self.series: dict[tuple, CrossSeries] = {}
        self.frames: dict[int, _Frame] = {}
        self.volumes: dict[int, tuple[_VolumeTracker, CrossSeries]] = {}
        # History already asked from the DB: timeframe minutes -> bars.
        self.seeded: dict[int, int] = {}


@dataclass(slots=True)
class Seed:
    """Stored history for one instrument: what was asked (timeframe minutes
    -> bars), closed minutes as (ts, close, volume) oldest first, and per
    timeframe > 1m the closes of complete buckets and the last bucket's start."""

    wants: dict[int, int]
    minutes: list[tuple[datetime, float, float]]
    frames: dict[int, tuple[list[float], datetime]]


@dataclass(slots=True)
class RuleChanges:
    """What `fetch_changes` read; `apply_changes` installs it without I/O."""

    version: int | None
    full: bool
    ids: set[int]
    rows: list[dict]
    seeds: dict[str, Seed]


# --- the engine --------------------------------------------------------------------


class AlertEngine:
    """Evaluates active alert rules for a set of canonical symbols."""

    def __init__(
        self,
        symbols: Iterable[str] | None = None,
        *,
        seed_from_db: bool = True,
        check_interval: float = 0.2,
    ) -> None:
        self.symbols: frozenset[str] | None = (
            frozenset(symbols) if symbols is not None else None
        )
        self.seed_from_db = seed_from_db
        self.check_interval = check_interval
        self.rules: dict[int, EngineRule] = {}
        self._instruments: dict[str, _Instrument] = {}
        self._version: int | None = None
        self._missed_changes = False
        self._checked_at = 0.0
        self._seeding: dict[str, Seed] = {}
        self.reloads = 0
        self.fired_count = 0
        self.suppressed_count = 0

    # -- rule loading -----------------------------------------------------------
    def reload(self) -> None:
        """Load every active rule for the engine's symbols (sync, DB access)."""
        self.apply_changes(self.fetch_changes(full=True))

    def maybe_reload(self) -> bool:
        """Reload changed rules if any were changed since the last load.

        At most one Redis round trip every `check_interval` seconds; a DB query
        only when something changed. Returns whether rules were reloaded.
        """
        now = time.monotonic()
        if now - self._checked_at < self.check_interval:
            return False
        self._checked_at = now
        changes = self.fetch_changes()
        if changes is None:
            return False
        self.apply_changes(changes)
        return True

    async def areload(self) -> None:
        from asgiref.sync import sync_to_async

        changes = await sync_to_async(self.fetch_changes, thread_sensitive=False)(
            full=True
        )
        self.apply_changes(changes)

    async def amaybe_reload(self) -> bool:
        from asgiref.sync import sync_to_async

        now = time.monotonic()
        if now - self._checked_at < self.check_interval:
            return False
        self._checked_at = now
        changes = await sync_to_async(self.fetch_changes, thread_sensitive=False)()
        if changes is None:
            return False
        self.apply_changes(changes)
        return True

    def fetch_changes(self, *, full: bool = False) -> RuleChanges | None:
        """Read what changed (Redis, then the DB). None when nothing did.

        Safe to run in another thread: it only reads engine state.
        """
        from alerts import selectors
        from core.redis import REDIS_ERRORS, redis_outage

        # Redis away: keep evaluating with the rules loaded (quietly, see
        # core.outage). Rule changes made meanwhile may never have reached
        # the counter, so the first read after a missed one reloads them all.
        outage = redis_outage()
        version = ids = None
        read = outage.should_try()
        if read:
            try:
                version, ids = selectors.rules_changes_since(version=self._version)
            except REDIS_ERRORS as exc:
                read = False
                outage.failed(
                    exc,
                    doing="reading alert rule changes",
                    impact="Alerts use the rules loaded so far",
                )
            else:
                outage.succeeded()
        if not read:
            self._missed_changes = True
            if not full:
                return None
        elif self._missed_changes:
            full = True
        if not full:
            if version == self._version and self._version is not None:
                return None
            full = ids is None
        rows = selectors.rules_active_for_engine(
            symbols=self.symbols, ids=None if full else ids
        )
        seeds = self._fetch_seeds(rows) if self.seed_from_db else {}
        return RuleChanges(
            version=version, full=full, ids=set(ids or ()), rows=rows, seeds=seeds
        )

    def _fetch_seeds(self, rows: list[dict]) -> dict[str, Seed]:
        """Stored history for rules that need warm-up: closed bars of each
        RSI/MA timeframe (resampled by the database) and the latest minutes
        (volume averages, the still-open bucket, 1-minute indicators)."""
        from alerts import selectors

        needed: dict[str, dict[int, int]] = {}
        instrument_ids: dict[str, int] = {}
        for row in rows:
            wants = _history_needs(row)
            if not wants:
                continue
            inst = self._instruments.get(row["symbol"])
            have = inst.seeded if inst is not None else {}
            mine = needed.setdefault(row["symbol"], {})
            for minutes, bars in wants.items():
                if have.get(minutes, 0) < bars:
                    mine[minutes] = max(mine.get(minutes, 0), bars)
            instrument_ids[row["symbol"]] = row["instrument_id"]
        seeds: dict[str, Seed] = {}
        for symbol, wants in needed.items():
            if not wants:
                continue
            instrument_id = instrument_ids[symbol]
            minute_limit = max(
                [wants.get(1, 0)] + [m for m in wants if m > 1]  # the open bucket
            )
            minute_bars = selectors.minute_bars_for_seeding(
                instrument_id=instrument_id, limit=min(minute_limit, MAX_SEED_MINUTES)
            )
            frames: dict[int, tuple[list[float], datetime]] = {}
            if minute_bars:
                after_last = minute_bars[-1][0] + MINUTE
                for minutes, bars in wants.items():
                    if minutes == 1:
                        continue
                    end = _bucket_start(after_last, minutes)
                    closed = selectors.closed_bars_for_seeding(
                        instrument_id=instrument_id,
                        timeframe=_TIMEFRAME_NAMES[minutes],
                        end=end,
                        limit=min(bars, MAX_FRAME_HISTORY),
                    )
                    if closed:
                        frames[minutes] = ([c for _ts, c in closed], closed[-1][0])
            seeds[symbol] = Seed(wants=wants, minutes=minute_bars, frames=frames)
        return seeds

    def apply_changes(self, changes: RuleChanges) -> None:
        """Install fetched rules into the index (no I/O)."""
        self._seeding = {}
        for symbol, seed in changes.seeds.items():
            inst = self._instrument(symbol)
            for minutes, bars in seed.wants.items():
                inst.seeded[minutes] = max(inst.seeded.get(minutes, 0), bars)
            live = list(inst.recent)
            first_live = live[0][0] if live else None
            older = [b for b in seed.minutes if first_live is None or b[0] < first_live]
            self._seeding[symbol] = Seed(
                wants=seed.wants, minutes=older + live, frames=seed.frames
            )
        incoming = {row["id"]: EngineRule.from_row(row) for row in changes.rows}
        if changes.full:
            gone = set(self.rules) - set(incoming)
        else:
            gone = {i for i in changes.ids if i not in incoming}
        for rule_id in gone:
            self.remove_rule(rule_id)
        for rule in incoming.values():
            self.add_rule(rule)
        self._seeding = {}
        if changes.version is not None or changes.full:
            self._version = changes.version
        if changes.full and changes.version is not None:
            self._missed_changes = False
        self.reloads += 1

    def add_rule(self, rule: EngineRule) -> None:
        """Insert or update one rule (keeps its armed state if unchanged)."""
        if self.symbols is not None and rule.symbol not in self.symbols:
            self.remove_rule(rule.id)  # moved to another shard's instrument
            return
        existing = self.rules.get(rule.id)
        if existing is not None:
            if existing.signature() == rule.signature():
                existing.cooldown = rule.cooldown
                existing.one_shot = rule.one_shot
                existing.notify_email = rule.notify_email
                existing.note = rule.note
                existing.owner_id = rule.owner_id
                if rule.last_fired and (
                    existing.last_fired is None or rule.last_fired > existing.last_fired
                ):
                    existing.last_fired = rule.last_fired
                return
            if existing.last_fired and (
                rule.last_fired is None or existing.last_fired > rule.last_fired
            ):
                rule.last_fired = existing.last_fired
            self.remove_rule(rule.id)
        inst = self._instrument(rule.symbol)
        inst.instrument_id = rule.instrument_id
        series = inst.series.get(rule.series_key)
        if series is None:
            series = self._create_series(inst, rule)
        series.add(rule)
        self.rules[rule.id] = rule

    def remove_rule(self, rule_id: int) -> None:
        rule = self.rules.pop(rule_id, None)
        if rule is not None and rule.series is not None:
            rule.series.remove(rule)

    def _create_series(self, inst: _Instrument, rule: EngineRule) -> CrossSeries:
        series = CrossSeries()
        series.epoch = inst.epoch
        key = rule.series_key
        inst.series[key] = series
        if rule.kind == "price":
            series.value = inst.price
        elif rule.kind == "change_pct":
            series.value = _change_pct(inst.price, inst.prev_close)
        elif rule.kind in ("rsi", "ma_cross"):
            minutes = TIMEFRAME_MINUTES.get(rule.timeframe, 1)
            frame = inst.frames.get(minutes)
            if frame is None:
                frame = inst.frames[minutes] = _Frame(minutes)
                seed = self._seeding.get(inst.symbol)
                stored = seed.frames.get(minutes) if seed is not None else None
                if stored is not None:
                    # Closed buckets resampled by the database, then the
                    # minutes of the bucket still open.
                    closes, last_bucket = stored
                    frame.closes.extend(closes)
                    frame.last_minute = (
                        last_bucket + timedelta(minutes=minutes) - MINUTE
                    )
                for ts, close, _volume in self._history(inst):
                    frame.on_minute(ts, close)
            if rule.kind == "rsi":
                tracker = _RSITracker(int(rule.period or 14))
            else:
                tracker = _MATracker(
                    rule.ma_type, int(rule.fast_period or 1), int(rule.slow_period or 2)
                )
            value = None
            for close in frame.closes:
                result = tracker.on_bar(close)
                if result is not None:
                    value = result
            series.value = value
            frame.trackers.append((tracker, series))
        elif rule.kind == "volume_spike":
            tracker = _VolumeTracker(int(rule.period or 1))
            for _ts, _close, volume in list(self._history(inst))[-tracker.period :]:
                tracker.on_minute_closed(volume)
            inst.volumes[tracker.period] = (tracker, series)
            series.value = None
        return series

    def _history(self, inst: _Instrument) -> Iterable[tuple[datetime, float, float]]:
        """Closed minutes to warm a new tracker: stored bars being applied
        now followed by the live ones, else the live ones."""
        seed = self._seeding.get(inst.symbol)
        return seed.minutes if seed is not None else inst.recent

    # -- state from the worker ----------------------------------------------------
    def set_freshness(self, symbol: str, state: str) -> None:
        """Feed freshness: nothing fires while "stale"; on leaving "stale" every
        value of the instrument re-baselines on its next update (no fire for
        what moved during the gap)."""
        inst = self._instrument(symbol)
        if state == "stale":
            inst.live = False
        elif not inst.live:
            inst.live = True
            inst.epoch += 1

    def set_prev_close(
        self, symbol: str, prev_close: float | Decimal | str | None
    ) -> None:
        inst = self._instrument(symbol)
        value = _float(prev_close)
        if value is None or value <= 0 or value == inst.prev_close:
            return
        inst.prev_close = value
        series = inst.series.get(("change_pct",))
        if series is not None:
            # A new session's reference is not a market move.
            series.epoch = -1

    # -- evaluation ------------------------------------------------------------------
    def on_event(self, event, snapshot: dict | None = None) -> list[FiredAlert]:
        """Evaluate one normalized event; return the alerts it fires."""
        symbol = event.symbol
        if self.symbols is not None and symbol not in self.symbols:
            return []
        kind = event.kind
        if kind == "quote" or kind == "status" or kind == "control":
            if snapshot:
                self._apply_snapshot(symbol, snapshot)
            return []
        inst = self._instruments.get(symbol)
        if inst is None:
            inst = self._instrument(symbol)
        if snapshot:
            self._apply_snapshot(symbol, snapshot)
        fired: list[FiredAlert] = []
        if kind == "trade":
            self._on_trade(inst, event, fired)
        elif kind == "bar":
            self._on_bar(inst, event, fired)
        return fired

    def on_anomaly(self, anomaly) -> list[FiredAlert]:
        """A market anomaly the stream worker detected
        (`marketdata.anomalies.Anomaly`); anomaly rules fire here."""
        return []

    def on_clock(self, now: datetime, grace: float = 3.0) -> list[FiredAlert]:
        """Close minutes built from trades once `now` is `grace` seconds past
        their end (so a quiet instrument's bar still closes). Optional."""
        fired: list[FiredAlert] = []
        limit = now - timedelta(seconds=grace) - MINUTE
        for inst in self._instruments.values():
            if inst.minute is not None and not inst.bars_feed and inst.minute <= limit:
                self._close_minute(
                    inst, inst.minute, inst.minute_close, inst.minute_volume, now, fired
                )
                inst.minute = None
                inst.minute_volume = 0.0
        return fired

    def _apply_snapshot(self, symbol: str, snapshot: dict) -> None:
        freshness = snapshot.get("freshness")
        if freshness:
            self.set_freshness(symbol, freshness)
        prev_close = snapshot.get("prev_close")
        if prev_close is not None:
            self.set_prev_close(symbol, prev_close)

    def _on_trade(self, inst: _Instrument, event, fired: list[FiredAlert]) -> None:
        ts = event.ts
        price = float(event.price)
        inst.saw_trade = True
        minute = ts.replace(second=0, microsecond=0)
        if inst.minute is None or minute > inst.minute:
            if inst.minute is not None and not inst.bars_feed:
                self._close_minute(
                    inst, inst.minute, inst.minute_close, inst.minute_volume, ts, fired
                )
            inst.minute = minute
            inst.minute_volume = 0.0
            self._volume_update(inst, ts, fired)
        if minute >= inst.minute:
            inst.minute_close = price
            inst.minute_volume += float(event.size)
        inst.price_decimal = event.price
        self._price_update(inst, price, ts, fired)
        if inst.volumes:
            self._volume_update(inst, ts, fired)

    def _on_bar(self, inst: _Instrument, bar, fired: list[FiredAlert]) -> None:
        if bar.timeframe != "1m" or bar.updated:
            return
        ts = bar.ts
        close = float(bar.close)
        volume = float(bar.volume)
        if not inst.saw_trade:
            # Bars-only feed: the bar is the price and the minute volume.
            inst.price_decimal = bar.close
            if inst.minute is None or ts > inst.minute:
                inst.minute = ts
            inst.minute_volume = volume
            inst.minute_close = close
            self._price_update(inst, close, ts, fired)
            if inst.volumes:
                self._volume_update(inst, ts, fired)
        elif not bar.closed and inst.minute == ts and volume > inst.minute_volume:
            inst.minute_volume = volume
            if inst.volumes:
                self._volume_update(inst, ts, fired)
        if bar.closed:
            inst.bars_feed = True
            self._close_minute(inst, ts, close, volume, ts + MINUTE, fired)
            if not inst.saw_trade:
                inst.minute = None
                inst.minute_volume = 0.0
                if inst.volumes:
                    self._volume_update(inst, ts + MINUTE, fired)

    def _close_minute(
        self,
        inst: _Instrument,
        ts: datetime,
        close: float,
        volume: float,
        now: datetime,
        fired: list[FiredAlert],
    ) -> None:
        if inst.last_closed is not None and ts <= inst.last_closed:
            return
        inst.last_closed = ts
        inst.recent.append((ts, close, volume))
        for tracker, _series in inst.volumes.values():
            tracker.on_minute_closed(volume)
        for frame in inst.frames.values():
            for series, value in frame.on_minute(ts, close):
                self._series_update(inst, series, value, now, fired)

    def _price_update(
        self, inst: _Instrument, price: float, ts: datetime, fired: list[FiredAlert]
    ) -> None:
        inst.price = price
        series = inst.series.get(("price",))
        if series is not None:
            self._series_update(inst, series, price, ts, fired)
        if inst.prev_close is not None:
            series = inst.series.get(("change_pct",))
            if series is not None:
                value = _change_pct(price, inst.prev_close)
                self._series_update(inst, series, value, ts, fired)

    def _volume_update(
        self, inst: _Instrument, ts: datetime, fired: list[FiredAlert]
    ) -> None:
        for tracker, series in inst.volumes.values():
            ratio = tracker.ratio(inst.minute_volume)
            if ratio is not None:
                self._series_update(inst, series, ratio, ts, fired)

    def _series_update(
        self,
        inst: _Instrument,
        series: CrossSeries,
        value: float,
        ts: datetime,
        fired: list[FiredAlert],
    ) -> None:
        previous = series.value
        crossed = series.update(value)
        if series.epoch != inst.epoch:
            # First update after a stale gap (or a new previous close): the
            # move is re-baselined, nothing fires.
            series.epoch = inst.epoch
            return
        if not crossed or not inst.live:
            return
        for rule in crossed:
            last = rule.last_fired
            if last is not None and (ts - last).total_seconds() < rule.cooldown:
                self.suppressed_count += 1
                continue
            rule.last_fired = ts
            fired.append(self._fired(inst, rule, value, previous, ts))
            self.fired_count += 1
            if rule.one_shot:
                self.remove_rule(rule.id)

    def _fired(
        self,
        inst: _Instrument,
        rule: EngineRule,
        value: float,
        previous: float | None,
        ts: datetime,
    ) -> FiredAlert:
        symbol = inst.symbol
        level = _fmt(rule.level)
        verb = "crossed above" if rule.direction == ABOVE else "crossed below"
        values: dict = {"value": value, "previous": previous, "level": rule.level}
        price_text = (
            format(inst.price_decimal.normalize(), "f")
            if inst.price_decimal is not None
            else "?"
        )
        if rule.kind == "price":
            message = f"{symbol} {verb} {level} (last {price_text})"
        elif rule.kind == "change_pct":
            values["prev_close"] = inst.prev_close
            message = (
                f"{symbol} change {value:+.2f}% {verb} {level}% (last {price_text})"
            )
        elif rule.kind == "rsi":
            values.update(rsi=value, period=rule.period, timeframe=rule.timeframe)
            message = f"{symbol} RSI({rule.period}, {rule.timeframe}) {value:.1f} {verb} {level}"
        elif rule.kind == "ma_cross":
            ma = (rule.ma_type or "sma").upper()
            values.update(
                fast=rule.fast_period,
                slow=rule.slow_period,
                ma_type=rule.ma_type,
                timeframe=rule.timeframe,
            )
            message = (
                f"{symbol} {ma}({rule.fast_period}) {verb} {ma}({rule.slow_period}) "
                f"on {rule.timeframe} (last {price_text})"
            )
        else:
            tracker = inst.volumes.get(int(rule.period or 1))
            average = tracker[0].average if tracker else None
            values.update(
                volume=inst.minute_volume, average=average, period=rule.period
            )
            message = (
                f"{symbol} minute volume {_fmt(inst.minute_volume)} is {value:.1f}× "
                f"the {rule.period}-minute average"
            )
        return FiredAlert(
            rule_id=rule.id,
            owner_id=rule.owner_id,
            instrument_id=rule.instrument_id or inst.instrument_id,
            symbol=symbol,
            kind=rule.kind,
            direction=rule.direction,
            level=rule.level if rule.kind != "ma_cross" else None,
            ts=ts,
            price=inst.price_decimal,
            value=value,
            previous=previous if previous is not None else value,
            values={k: _json_safe(v) for k, v in values.items()},
            message=message,
            note=rule.note,
            notify_email=rule.notify_email,
            one_shot=rule.one_shot,
        )

    # -- helpers -----------------------------------------------------------------------
    def _instrument(self, symbol: str) -> _Instrument:
        inst = self._instruments.get(symbol)
        if inst is None:
            inst = self._instruments[symbol] = _Instrument(symbol)
        return inst

    def stats(self) -> dict:
        """Counters for health/metrics output."""
        return {
            "rules": len(self.rules),
            "instruments": sum(1 for i in self._instruments.values() if i.series),
            "fired": self.fired_count,
            "suppressed_by_cooldown": self.suppressed_count,
            "reloads": self.reloads,
            "version": self._version,
        }


_TIMEFRAME_NAMES = {minutes: name for name, minutes in TIMEFRAME_MINUTES.items()}


def _bucket_start(ts: datetime, minutes: int) -> datetime:
    """Start of the clock-aligned bucket of `minutes` holding `ts` (the
    database's date_bin buckets share this alignment)."""
    ts = ts.replace(second=0, microsecond=0)
    return ts - timedelta(minutes=int(ts.timestamp() // 60) % minutes)


def _history_needs(row: dict) -> dict[int, int]:
    """Bars of stored history a rule wants, per timeframe in minutes."""
    kind = row["kind"]
    minutes = TIMEFRAME_MINUTES.get(row.get("timeframe") or "", 1)
    if kind in ("rsi", "ma_cross"):
        return {minutes: _history_minutes(row) // minutes}
    if kind == "volume_spike":
        return {1: int(row.get("period") or 1)}
    return {}


def _history_minutes(row: dict) -> int:
    kind = row["kind"]
    minutes = TIMEFRAME_MINUTES.get(row.get("timeframe") or "", 1)
    if kind == "rsi":
        return min(MAX_FRAME_HISTORY, 10 * int(row.get("period") or 14) + 1) * minutes
    if kind == "ma_cross":
        slow = int(row.get("slow_period") or 2)
        bars = slow * (5 if row.get("ma_type") == "ema" else 1) + 1
        return min(MAX_FRAME_HISTORY, bars) * minutes
    if kind == "volume_spike":
        return int(row.get("period") or 1)
    return 0


def _change_pct(price: float | None, prev_close: float | None) -> float | None:
    if price is None or not prev_close:
        return None
    return (price - prev_close) / prev_close * 100.0


def _float(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.8f}".rstrip("0").rstrip(".") or "0"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return str(value)
    return value
