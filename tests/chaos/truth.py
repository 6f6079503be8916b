"""What the stack should hold, and how far it is from it.

The truth is what the user's vendor says: minute bars from the simulator's
Alpaca REST endpoints (`/v2/stocks/bars`, `/v1beta3/crypto/us/bars`), read
with plain HTTP (none of the project's provider code). Stored bars are read
from the private database with the test's own connection. Alert
expectations come from the simulator's trade tape (`prices.minute_ticks`,
same seed), which is also what the stream carries.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from simulator import prices
from tests.chaos.stack import SIM_KEY, SIM_SECRET, USER, Stack

MINUTE = timedelta(minutes=1)
OHLCV = ("open", "high", "low", "close", "volume")


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vendor_bars(
    stack: Stack, symbols: list[str], start: datetime, end: datetime
) -> dict[str, dict[datetime, tuple]]:
    """Minute bars with start in [start, end) per symbol, as the vendor's REST
    history serves them: {symbol: {ts: (o, h, l, c, v)}} (Decimals)."""
    out: dict[str, dict[datetime, tuple]] = {s: {} for s in symbols}
    groups = {
        "/v1beta3/crypto/us/bars": [s for s in symbols if "/" in s],
        "/v2/stocks/bars": [s for s in symbols if "/" not in s],
    }
    for path, group in groups.items():
        if not group:
            continue
        token = None
        while True:
            query = {
                "symbols": ",".join(group),
                "timeframe": "1Min",
                "start": _rfc3339(start),
                "end": _rfc3339(end - timedelta(seconds=1)),
                "limit": "10000",
            }
            if "/v2/" in path:
                query["feed"] = "sip"
            if token:
                query["page_token"] = token
            request = urllib.request.Request(
                f"{stack.sim_http}{path}?{urllib.parse.urlencode(query)}",
                headers={"APCA-API-KEY-ID": SIM_KEY, "APCA-API-SECRET-KEY": SIM_SECRET},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.loads(response.read(), parse_float=Decimal)
            for symbol, bars in body["bars"].items():
                for bar in bars:
                    ts = datetime.fromisoformat(bar["t"].replace("Z", "+00:00"))
                    if start <= ts < end:
                        out[symbol][ts] = tuple(
                            Decimal(bar[k]) for k in ("o", "h", "l", "c", "v")
                        )
            token = body.get("next_page_token")
            if not token:
                break
    return out


def stored_bars(
    stack: Stack, symbols: list[str], start: datetime, end: datetime
) -> dict[str, list[tuple]]:
    """Stored 1-minute rows (ts, o, h, l, c, v) per symbol, duplicates kept."""
    rows = stack.query(
        """
        SELECT i.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume
        FROM marketdata_bar b JOIN marketdata_instrument i ON i.id = b.instrument_id
        WHERE i.symbol = ANY(%s) AND b.timeframe = '1m' AND b.ts >= %s AND b.ts < %s
        ORDER BY i.symbol, b.ts
        """,
        (symbols, start, end),
    )
    out: dict[str, list[tuple]] = {s: [] for s in symbols}
    for symbol, ts, *values in rows:
        out[symbol].append((ts, *values))
    return out


@dataclass
class Comparison:
    """Stored minutes against the vendor's, per symbol."""

    start: datetime
    end: datetime
    expected: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[datetime]] = field(default_factory=dict)
    extra: dict[str, list[datetime]] = field(default_factory=dict)
    duplicate: dict[str, list[datetime]] = field(default_factory=dict)
    differing: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(
            any(v.values())
            for v in (self.missing, self.extra, self.duplicate, self.differing)
        )

    def summary(self) -> str:
        lines = [f"window {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M} UTC"]
        for symbol, expected in self.expected.items():
            lines.append(
                f"  {symbol}: {expected} vendor minutes, "
                f"{len(self.missing[symbol])} missing, {len(self.extra[symbol])} extra, "
                f"{len(self.duplicate[symbol])} duplicate, "
                f"{len(self.differing[symbol])} differing"
            )
            for label, items in (
                ("missing", self.missing[symbol]),
                ("extra", self.extra[symbol]),
                ("duplicate", self.duplicate[symbol]),
            ):
                if items:
                    shown = ", ".join(f"{t:%H:%M}" for t in items[:12])
                    lines.append(
                        f"    {label}: {shown}{' …' if len(items) > 12 else ''}"
                    )
            for text in self.differing[symbol][:5]:
                lines.append(f"    differs: {text}")
        return "\n".join(lines)


def compare(
    stack: Stack, symbols: list[str], start: datetime, end: datetime
) -> Comparison:
    truth = vendor_bars(stack, symbols, start, end)
    stored = stored_bars(stack, symbols, start, end)
    result = Comparison(start=start, end=end)
    for symbol in symbols:
        expected = truth[symbol]
        seen: dict[datetime, tuple] = {}
        duplicate = []
        for ts, *values in stored[symbol]:
            if ts in seen:
                duplicate.append(ts)
            seen[ts] = tuple(values)
        differing = []
        for ts in sorted(set(seen) & set(expected)):
            if seen[ts] != expected[ts]:
                pairs = [
                    f"{name} {got} != {want}"
                    for name, got, want in zip(
                        OHLCV, seen[ts], expected[ts], strict=True
                    )
                    if got != want
                ]
                differing.append(f"{ts:%H:%M} " + "; ".join(pairs))
        result.expected[symbol] = len(expected)
        result.missing[symbol] = sorted(set(expected) - set(seen))
        result.extra[symbol] = sorted(set(seen) - set(expected))
        result.duplicate[symbol] = duplicate
        result.differing[symbol] = differing
    return result


# --- the gap ledger and history jobs ---------------------------------------------------
def unsettled_gaps(stack: Stack, start: datetime, end: datetime) -> list[tuple]:
    """Gaps overlapping [start, end) still open or being repaired."""
    return stack.query(
        """
        SELECT i.symbol, g.start, g."end", g.state, g.attempts, g.source, g.error
        FROM marketdata_gap g JOIN marketdata_instrument i ON i.id = g.instrument_id
        WHERE g.state IN ('open', 'repairing') AND g.start < %s AND g."end" > %s
        ORDER BY g.start
        """,
        (end, start),
    )


def ledger_summary(stack: Stack, start: datetime) -> str:
    rows = stack.query(
        """
        SELECT i.symbol, g.start, g."end", g.state, g.attempts, g.source,
               g.bars_added, left(g.error, 120)
        FROM marketdata_gap g JOIN marketdata_instrument i ON i.id = g.instrument_id
        WHERE g."end" > %s ORDER BY g.start, i.symbol
        """,
        (start,),
    )
    if not rows:
        return "gap ledger: empty for the window"
    lines = [f"gap ledger ({len(rows)} rows):"]
    for symbol, lo, hi, state, attempts, source, added, error in rows[:40]:
        lines.append(
            f"  {symbol} {lo:%H:%M}–{hi:%H:%M} {state} attempts={attempts} "
            f"source={source} added={added} {error or ''}"
        )
    return "\n".join(lines)


def job_states(stack: Stack) -> list[tuple]:
    """(job id, job state, {chunk state: count}) for every history job."""
    jobs = stack.query("SELECT id, state FROM marketdata_loadjob ORDER BY id")
    out = []
    for job_id, state in jobs:
        counts = dict(
            stack.query(
                "SELECT state, count(*) FROM marketdata_loadchunk WHERE job_id = %s "
                "GROUP BY state",
                (job_id,),
            )
        )
        out.append((job_id, state, counts))
    return out


def jobs_summary(stack: Stack) -> str:
    lines = ["history jobs:"]
    for job_id, state, counts in job_states(stack):
        lines.append(f"  job {job_id}: {state} chunks {counts}")
    rows = stack.query(
        """
        SELECT c.id, i.symbol, c.start, c.state, c.pages, c.bars_received,
               c.bars_added, c.attempts, c.heartbeat_at, left(c.error, 160)
        FROM marketdata_loadchunk c JOIN marketdata_instrument i ON i.id = c.instrument_id
        WHERE c.state NOT IN ('done', 'skipped') ORDER BY c.id
        """
    )
    for row in rows[:20]:
        lines.append("    unfinished chunk " + " ".join(str(v) for v in row))
    return "\n".join(lines)


# --- alerts -------------------------------------------------------------------------
def trades(symbol: str, start: datetime, end: datetime, *, seed: int):
    """The tape's trades in [start, end): (ts, price) in time order."""
    minute = start.replace(second=0, microsecond=0)
    while minute < end:
        minute_ts = int(minute.timestamp())
        if prices.is_trading_minute(symbol, minute_ts, hours="extended"):
            ticks = prices.minute_ticks(symbol, minute_ts, seed=seed)
            for offset, price in zip(
                ticks.offset_ns.tolist(), ticks.price.tolist(), strict=True
            ):
                ts = minute + timedelta(microseconds=offset // 1000)
                if start <= ts < end:
                    yield ts, Decimal(repr(price))
        minute += MINUTE


@dataclass(frozen=True)
class ExpectedAlert:
    symbol: str
    direction: str
    level: Decimal
    ts: datetime  # the trade that crosses
    price: Decimal
    rule_id: int | None = None

    def describe(self) -> str:
        return (
            f"rule {self.rule_id} {self.symbol} {self.direction} {self.level}: "
            f"expected at {self.ts:%H:%M:%S.%f} (trade {self.price})"
        )


def crossing_rule(
    symbol: str, *, quiet: tuple[datetime, datetime], cross_by: datetime, seed: int
) -> ExpectedAlert | None:
    """A one-shot price rule that the tape surely does not cross during
    `quiet` (so it is armed whenever it is loaded in that span) and first
    crosses after it, before `cross_by`; None when the tape does not move
    far enough. Tries a new high first, then a new low."""
    increment = Decimal(str(prices.symbol_spec(symbol).increment))
    calm = [p for _, p in trades(symbol, quiet[0], quiet[1], seed=seed)]
    if not calm:
        return None
    later = list(trades(symbol, quiet[1], cross_by, seed=seed))
    high = max(calm) + increment
    for ts, price in later:
        if price >= high:
            return ExpectedAlert(symbol, "above", high, ts, price)
    low = min(calm) - increment
    for ts, price in later:
        if price <= low:
            return ExpectedAlert(symbol, "below", low, ts, price)
    return None


def create_rules(
    stack: Stack, expected: list[ExpectedAlert], note: str
) -> list[ExpectedAlert]:
    specs = [
        {
            "symbol": e.symbol,
            "direction": e.direction,
            "level": str(e.level),
            "note": note,
        }
        for e in expected
    ]
    ids = stack.ask("price_rules", username=USER, rules=specs)["ids"]
    return [
        ExpectedAlert(e.symbol, e.direction, e.level, e.ts, e.price, rule_id)
        for e, rule_id in zip(expected, ids, strict=True)
    ]


def alert_problems(stack: Stack, expected: list[ExpectedAlert]) -> list[str]:
    """Every expected alert recorded exactly once, at its crossing trade."""
    problems = []
    for alert in expected:
        rows = stack.query(
            "SELECT ts, price FROM alerts_alertevent WHERE rule_id = %s ORDER BY id",
            (alert.rule_id,),
        )
        if len(rows) != 1:
            problems.append(f"{alert.describe()}: recorded {len(rows)} times")
            continue
        ts, price = rows[0]
        if abs(ts - alert.ts) >= timedelta(microseconds=1) or price != alert.price:
            problems.append(
                f"{alert.describe()}: recorded at {ts:%H:%M:%S.%f} price {price}"
            )
    return problems
