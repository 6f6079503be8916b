"""The live tape: which trades, quotes and closed bars fall in a time window.

Trades are exactly `prices.minute_ticks` (so a live minute aggregates to the
REST minute); quotes fill the remaining message budget (`rate` messages per
second per symbol) at stratified times, priced around the last trade.
Times are integer nanoseconds since the epoch on the simulator's clock.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from simulator import prices

NS = 1_000_000_000
MINUTE_NS = 60 * NS
_QUOTE_BLOCK = 4096
UPDATED_BAR_DELAY_NS = 30 * NS


class SimClock:
    """Wall clock, optionally shifted and/or sped up (`speed` simulated
    seconds per real second), so tests can make minutes pass quickly."""

    def __init__(self, *, speed: float = 1.0, start: datetime | None = None) -> None:
        self.set(speed=speed, start=start)

    def set(self, *, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self._real0 = time.time_ns()
        self._sim0 = int(start.timestamp() * NS) if start is not None else self._real0
        self.speed = float(speed)

    def now_ns(self) -> int:
        elapsed = time.time_ns() - self._real0
        return self._sim0 + int(elapsed * self.speed)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ns() / NS, tz=UTC)


@lru_cache(maxsize=512)
def _quote_table(
    seed: int,
    symbol: str,
    spec: prices.SymbolSpec,
    minute_index: int,
    block: int,
    count: int,
) -> tuple[np.ndarray, ...]:
    """Every quote of one block of a minute's `count` quotes (rows
    `block * 4,096` on): (offset in the minute ns, bid, bid size, ask, ask
    size), offsets ascending. Built once; a tick reads the rows of its window
    by bisection. Building the few rows of each window every tick was most
    of the simulator's CPU (a dozen numpy calls on arrays of one or two rows,
    per symbol, 50 times a second). A symbol uses one or two at a time: 512
    hold every symbol of the universe (123) at a minute's turn, on the
    delayed feed too. 40 bytes a quote: 48 KB a table at 20 messages a
    second, 160 KB (the block's 4,096 rows) from 68 a second."""
    ticks = prices.minute_ticks(symbol, minute_index * 60, seed=seed)
    j_lo = block * _QUOTE_BLOCK
    j_hi = min(count, j_lo + _QUOTE_BLOCK)
    draws = prices.quote_draws(
        seed, spec, minute_index * 1_000_003 + block, _QUOTE_BLOCK
    )
    draws = draws[: j_hi - j_lo]
    # Quote j falls in [j, j + 1) spacings: ascending in j.
    offsets = ((np.arange(j_lo, j_hi) + draws[:, 0]) * (MINUTE_NS / count)).astype(
        np.int64
    )
    last = np.searchsorted(ticks.offset_ns, offsets, side="right") - 1
    last_price = np.where(last >= 0, ticks.price[np.maximum(last, 0)], ticks.price[0])
    table = (offsets, *prices.quote_at(spec, last_price, draws[:, 1:].T))
    for column in table:
        column.flags.writeable = False
    return table


def _nothing(dtype) -> np.ndarray:
    empty = np.empty(0, dtype)
    empty.flags.writeable = False
    return empty


_NO_INTS, _NO_FLOATS, _NO_FLAGS = _nothing(np.int64), _nothing(float), _nothing(bool)


@dataclass
class Window:
    symbol: str
    spec: prices.SymbolSpec
    trade_ts: np.ndarray = field(default_factory=lambda: _NO_INTS)
    trade_price: np.ndarray = field(default_factory=lambda: _NO_FLOATS)
    trade_size: np.ndarray = field(default_factory=lambda: _NO_FLOATS)
    trade_buy: np.ndarray = field(default_factory=lambda: _NO_FLAGS)
    trade_id: np.ndarray = field(default_factory=lambda: _NO_INTS)
    quote_ts: np.ndarray = field(default_factory=lambda: _NO_INTS)
    bid: np.ndarray = field(default_factory=lambda: _NO_FLOATS)
    bid_size: np.ndarray = field(default_factory=lambda: _NO_FLOATS)
    ask: np.ndarray = field(default_factory=lambda: _NO_FLOATS)
    ask_size: np.ndarray = field(default_factory=lambda: _NO_FLOATS)
    #: starts (epoch s) of trading minutes that ended inside the window
    closed_minutes: list[int] = field(default_factory=list)
    t0_ns: int = 0
    t1_ns: int = 0

    @property
    def empty(self) -> bool:
        return (
            not len(self.trade_ts)
            and not len(self.quote_ts)
            and not self.closed_minutes
        )


class Tape:
    def __init__(self, *, seed: int, hours: str, rate: float) -> None:
        if hours not in prices.HOURS_CHOICES:
            raise ValueError(f"hours must be one of {prices.HOURS_CHOICES}")
        self.seed = seed
        self.hours = hours
        self.rate = float(rate)

    def hours_for(self, symbol: str) -> str:
        return "always" if symbol == prices.TEST_SYMBOL else self.hours

    def trading(self, symbol: str, minute_ts: int) -> bool:
        return prices.is_trading_minute(symbol, minute_ts, hours=self.hours_for(symbol))

    def window(
        self, symbol: str, t0_ns: int, t1_ns: int, *, quotes_after_ns: int | None = None
    ) -> Window | None:
        """Events with t0 < time <= t1. None for unknown symbols. Quotes only
        after `quotes_after_ns` when given: a server that fell behind skips
        quotes (never trades or bars) to catch up."""
        spec = prices.symbol_spec(symbol)
        if spec is None:
            return None
        win = Window(symbol=symbol, spec=spec, t0_ns=t0_ns, t1_ns=t1_ns)
        if t1_ns <= t0_ns:
            return win
        first_minute = t0_ns // MINUTE_NS
        last_minute = t1_ns // MINUTE_NS
        trades: list[tuple] = []
        quotes: list[tuple] = []
        for minute_index in range(first_minute, last_minute + 1):
            minute_ts = minute_index * 60
            start_ns = minute_index * MINUTE_NS
            if not self.trading(symbol, minute_ts):
                continue
            end_ns = start_ns + MINUTE_NS
            if t0_ns < end_ns <= t1_ns:
                win.closed_minutes.append(minute_ts)
            lo, hi = t0_ns - start_ns, t1_ns - start_ns
            if hi < 0 or lo >= MINUTE_NS:
                continue
            ticks = prices.minute_ticks(symbol, minute_ts, seed=self.seed)
            a, b = _between(ticks.offset_ns, lo, hi)
            if a < b:
                trades.append(
                    (
                        start_ns + ticks.offset_ns[a:b],
                        ticks.price[a:b],
                        ticks.size[a:b],
                        ticks.buy[a:b],
                        ticks.trade_id[a:b],
                    )
                )
            q_lo = (
                lo if quotes_after_ns is None else max(lo, quotes_after_ns - start_ns)
            )
            q = self._quotes(spec, symbol, minute_index, ticks, q_lo, hi)
            if q is not None:
                quotes.append(q)
        if trades:
            (
                win.trade_ts,
                win.trade_price,
                win.trade_size,
                win.trade_buy,
                win.trade_id,
            ) = _joined(trades)
        if quotes:
            win.quote_ts, win.bid, win.bid_size, win.ask, win.ask_size = _joined(quotes)
        return win

    def updated_minutes(self, symbol: str, t0_ns: int, t1_ns: int) -> list[int]:
        """Minutes re-sent as Alpaca `updatedBars` in (t0, t1]: about one in
        five, 30 s after they closed, with the same values (no late trades
        exist here, so history and stream still agree)."""
        spec = prices.symbol_spec(symbol)
        if spec is None:
            return []
        delay = UPDATED_BAR_DELAY_NS + MINUTE_NS
        out = []
        for minute_index in range(
            (t0_ns - delay) // MINUTE_NS, (t1_ns - delay) // MINUTE_NS + 1
        ):
            due = minute_index * MINUTE_NS + delay
            if not t0_ns < due <= t1_ns:
                continue
            if (minute_index * 2654435761 + spec.key) % 5:
                continue
            if self.trading(symbol, minute_index * 60):
                out.append(minute_index * 60)
        return out

    def quotes_per_minute(self, n_trades: int) -> int:
        return max(int(round(self.rate * 60)) - n_trades, 0)

    def _quotes(
        self,
        spec,
        symbol: str,
        minute_index: int,
        ticks: prices.Ticks,
        lo: int,
        hi: int,
    ):
        count = self.quotes_per_minute(len(ticks.offset_ns))
        if count <= 0:
            return None
        spacing = MINUTE_NS / count
        j_lo = max(0, int(math.floor(max(lo, 0) / spacing)) - 1)
        j_hi = min(count, int(math.ceil(min(hi, MINUTE_NS) / spacing)) + 1)
        if j_hi <= j_lo:
            return None
        parts = []
        for block in range(j_lo // _QUOTE_BLOCK, (j_hi - 1) // _QUOTE_BLOCK + 1):
            table = _quote_table(self.seed, symbol, spec, minute_index, block, count)
            a, b = _between(table[0], lo, hi)
            if a < b:
                parts.append(tuple(column[a:b] for column in table))
        if not parts:
            return None
        offsets, bid, bid_size, ask, ask_size = _joined(parts)
        return minute_index * MINUTE_NS + offsets, bid, bid_size, ask, ask_size

    # --- snapshots used by REST "latest" endpoints and partial bars -------------

    def partial_minute(self, symbol: str, minute_ts: int, upto_ns: int) -> prices.Ticks:
        """Ticks of the minute that happened at or before `upto_ns`."""
        ticks = prices.minute_ticks(symbol, minute_ts, seed=self.seed)
        sel = ticks.offset_ns <= upto_ns - minute_ts * NS
        return prices.Ticks(*(col[sel] for col in ticks))

    def last_trade(
        self, symbol: str, now_ns: int
    ) -> tuple[int, float, float, bool, int] | None:
        """(ts_ns, price, size, buy, id) of the last trade at or before now."""
        minute_ts = now_ns // MINUTE_NS * 60
        if self.trading(symbol, minute_ts):
            ticks = self.partial_minute(symbol, minute_ts, now_ns)
            if len(ticks.offset_ns):
                return _tick(ticks, -1, minute_ts)
        previous = prices.minute_bars(
            symbol,
            minute_ts - 14 * 86400,
            minute_ts,
            seed=self.seed,
            hours=self.hours_for(symbol),
            limit=1,
            descending=True,
        )
        if not len(previous):
            return None
        prev_ts = int(previous.ts[0])
        return _tick(prices.minute_ticks(symbol, prev_ts, seed=self.seed), -1, prev_ts)

    def last_quote(self, symbol: str, now_ns: int) -> tuple | None:
        """(ts_ns, bid, bid_size, ask, ask_size) of the last quote at or before now."""
        spec = prices.symbol_spec(symbol)
        trade = self.last_trade(symbol, now_ns)
        if spec is None or trade is None:
            return None
        win = self.window(symbol, max(trade[0] - 1, now_ns - MINUTE_NS), now_ns)
        if win is not None and len(win.quote_ts):
            return (
                int(win.quote_ts[-1]),
                float(win.bid[-1]),
                float(win.bid_size[-1]),
                float(win.ask[-1]),
                float(win.ask_size[-1]),
            )
        draw = np.array([0.5, 0.5, 0.5, 0.5])
        bid, bid_size, ask, ask_size = prices.quote_at(spec, trade[1], draw)
        return (trade[0], float(bid), float(bid_size), float(ask), float(ask_size))


def _tick(
    ticks: prices.Ticks, i: int, minute_ts: int
) -> tuple[int, float, float, bool, int]:
    return (
        minute_ts * NS + int(ticks.offset_ns[i]),
        float(ticks.price[i]),
        float(ticks.size[i]),
        bool(ticks.buy[i]),
        int(ticks.trade_id[i]),
    )


@lru_cache(maxsize=4096)
def second_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def rfc3339_ns(ts_ns: int) -> str:
    """RFC-3339 UTC with up to 9 fractional digits, trailing zeros trimmed."""
    seconds, frac = divmod(ts_ns, NS)
    base = second_text(seconds)
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def parse_time_ns(value: str) -> int:
    """RFC-3339 with 0-9 fractional digits -> epoch nanoseconds."""
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d:\d\d)$", value)
    if not match:
        raise ValueError(f"not an RFC-3339 time: {value!r}")
    zone = "+00:00" if match.group(3) in ("Z", "z") else match.group(3)
    seconds = int(datetime.fromisoformat(match.group(1) + zone).timestamp())
    fraction = (match.group(2) or "").ljust(9, "0")
    return seconds * NS + int(fraction)


def rfc3339_s(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_s_many(ts: np.ndarray) -> list[str]:
    """Vectorized `rfc3339_s` for an array of epoch seconds."""
    text = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")
    return [t + "Z" for t in text.tolist()]


def _between(ascending: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The slice of `ascending` with lo < value <= hi."""
    found = ascending.searchsorted((lo, hi), side="right")
    return int(found[0]), int(found[1])


def _joined(parts: list[tuple]) -> tuple:
    """Columns of consecutive parts, each part a tuple of columns (new
    arrays: a window's columns never share memory with a cached table)."""
    if len(parts) == 1:
        return tuple(np.array(column) for column in parts[0])
    return tuple(np.concatenate(columns) for columns in zip(*parts, strict=True))
