"""Loading rules into the engine: change detection, the database read, the
warm-up history, portfolio terms and other shards' prices.

Every rule write in `alerts.services` and every ORM save/delete of a rule
(`alerts.signals`, the one notification path) bumps a Redis counter and
records the rule id in a sorted set scored by it; `fetch_changes` reads both
in one round trip and then only the changed rules. The `fetch_*` methods do
the I/O and may run in a thread (the stream worker's database thread); the
`apply_*` methods install the result on the caller's thread (the worker's
loop) without I/O, so evaluation never races an update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alerts.engine.index import EngineRule
from alerts.engine.trackers import MAX_FRAME_HISTORY, MINUTE, MinuteBar, bucket_start
from alerts.kinds import TIMEFRAME_NAMES, kind_get

MAX_SEED_MINUTES = 20_000
#: Portfolio holdings (transactions, the session's cash flow) are re-read
#: this often: a trade entered in the portfolio reaches alerts within it.
PORTFOLIO_REFRESH = 60.0


@dataclass(slots=True)
class Seed:
    """Stored history for one instrument: what was asked (timeframe minutes
    -> bars), closed minutes oldest first, and per timeframe > 1m the
    complete buckets as (ts, open, high, low, close, volume) and the last
    bucket's start."""

    wants: dict[int, int]
    minutes: list[MinuteBar]
    frames: dict[int, tuple[list[tuple], datetime]]


@dataclass(slots=True)
class RuleChanges:
    """What `fetch_changes` read; `apply_changes` installs it without I/O."""

    version: int | None
    full: bool
    ids: set[int]
    rows: list[dict]
    seeds: dict[str, Seed]
    #: owner id -> `portfolio.selectors.PortfolioTerm`s (None: unchanged)
    portfolios: dict[int, list] | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def history_needs(rule: EngineRule) -> dict[int, int]:
    """Bars of stored history a rule wants, per timeframe in minutes."""
    return kind_get(rule.kind).history(rule)


def history_minutes(rule: EngineRule) -> int:
    return kind_get(rule.kind).warmup_minutes(rule)


def portfolio_owners(rules) -> set[int]:
    owners = set()
    for rule in rules:
        if rule.kind == "portfolio_value" or any(
            c.kind == "portfolio_value" for c in rule.conditions_engine
        ):
            owners.add(rule.owner_id)
    return owners


class Loading:
    """The loading half of `AlertEngine` (a mixin: it uses the engine's
    index methods `add_rule`, `remove_rule`, `portfolio_set`)."""

    def reload(self) -> None:
        """Load every active rule for the engine's symbols (sync, DB access)."""
        self.apply_changes(self.fetch_changes(full=True))

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
                return self._fetch_portfolios_due(version=self._version)
        elif self._missed_changes:
            full = True
        if not full:
            if version == self._version and self._version is not None:
                return self._fetch_portfolios_due(version=version)
            full = ids is None
        rows = selectors.rules_active_for_engine(
            symbols=self.symbols, ids=None if full else ids
        )
        incoming = [EngineRule.from_row(row) for row in rows]
        seeds = self._fetch_seeds(incoming) if self.seed_from_db else {}
        owners = portfolio_owners(incoming) | (
            set() if full else set(self._portfolio_owners)
        )
        portfolios = self._fetch_portfolios(owners) if owners else None
        return RuleChanges(
            version=version,
            full=full,
            ids=set(ids or ()),
            rows=rows,
            seeds=seeds,
            portfolios=portfolios,
        )

    def _fetch_portfolios_due(self, *, version) -> RuleChanges | None:
        if not self._portfolio_owners or not self.seed_from_db:
            return None
        if time.monotonic() - self._portfolios_at < PORTFOLIO_REFRESH:
            return None
        return RuleChanges(
            version=version,
            full=False,
            ids=set(),
            rows=[],
            seeds={},
            portfolios=self._fetch_portfolios(set(self._portfolio_owners)),
        )

    def _fetch_portfolios(self, owners: set[int]) -> dict[int, list]:
        from portfolio.selectors import portfolio_terms

        self._portfolios_at = time.monotonic()
        terms = portfolio_terms(owner_ids=owners, at=self.clock())
        return {owner: terms.get(owner, []) for owner in owners}

    def _fetch_seeds(self, rules: list[EngineRule]) -> dict[str, Seed]:
        """Stored history for rules that need warm-up: closed bars of each
        timeframe (resampled by the database) and the latest minutes
        (volume averages, the still-open bucket, 1-minute indicators)."""
        from alerts import selectors

        needed: dict[str, dict[int, int]] = {}
        instrument_ids: dict[str, int] = {}
        for rule in rules:
            for sub in rule.conditions_engine or [rule]:
                wants = history_needs(sub)
                if not wants or not sub.symbol:
                    continue
                inst = self._instruments.get(sub.symbol)
                have = inst.seeded if inst is not None else {}
                mine = needed.setdefault(sub.symbol, {})
                for minutes, bars in wants.items():
                    frame = inst.frames.get(minutes) if inst is not None else None
                    # Pattern rules need OHLCV bars, which an indicator's
                    # frame does not keep: fetch them even if seeded.
                    bare = sub.kind == "pattern" and (frame is None or not frame.bars)
                    if bare or have.get(minutes, 0) < bars:
                        mine[minutes] = max(mine.get(minutes, 0), bars)
                instrument_ids[sub.symbol] = sub.instrument_id
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
            frames: dict[int, tuple[list[tuple], datetime]] = {}
            if minute_bars:
                after_last = minute_bars[-1][0] + MINUTE
                for minutes, bars in wants.items():
                    if minutes == 1:
                        continue
                    closed = selectors.closed_bars_for_seeding(
                        instrument_id=instrument_id,
                        timeframe=TIMEFRAME_NAMES[minutes],
                        end=bucket_start(after_last, minutes),
                        limit=min(bars, MAX_FRAME_HISTORY),
                    )
                    if closed:
                        frames[minutes] = (closed, closed[-1][0])
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
        if changes.portfolios is not None:
            for owner_id, terms in changes.portfolios.items():
                self.portfolio_set(owner_id, terms)
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

    # -- other shards' instruments --------------------------------------------------
    def foreign_symbols(self) -> set[str]:
        """Instruments read by multi/portfolio rules this shard evaluates but
        does not own: the worker reads their snapshots for `apply_foreign`."""
        if self.owns is None:
            return set()
        symbols = set()
        for rule_id in list(self._spanning):
            rule = self.rules.get(rule_id)
            if rule is not None and self._owns(rule.home):
                symbols.update(s for s in self.rule_symbols(rule) if not self.owns(s))
        return symbols
