"""Deterministic simulated prices: the single source of truth of the simulator.

Every number the simulator serves (REST bars, live trades/quotes/bars, Finnhub
quotes, Binance klines) comes from here, so a minute fetched over REST equals
the same minute aggregated from the live stream.

Model, per (seed, symbol):

- A daily anchor: the log price at 00:00 UTC of every day is a mean-reverting
  (Ornstein-Uhlenbeck) walk around a plausible base price, half-life ~1 year,
  with the asset class's daily volatility (equities ~1.5-2 %, crypto ~3-4 %).
  It is computed once per symbol for 1990-2060 and cached, so any day is
  available directly.
- Inside a day the minute closes follow a Brownian bridge between two anchors;
  its randomness comes from a counter-based generator (Philox) keyed by
  (seed, symbol, day), so any minute is random access and a day is one numpy
  vector.
- A minute's open is the previous minute's close; high/low add exponential
  excursions; prices are rounded to the instrument's increment.
- Each minute has `n` trades (>= 4) whose prices and sizes realize exactly the
  bar: the first trade is the open, the last the close, one trade at the high,
  one at the low, the rest in pairs symmetric around a centre price `m` (plus
  at most one trade at `m`), so volume, trade count and VWAP are closed-form for
  history and exact for the ticks (`minute_ticks`).

Hours: `always` means every minute has a bar; `nyse` keeps equity/ETF bars to
NYSE regular sessions (`marketdata.calendar`); crypto always trades 24/7. The
price path itself does not depend on hours (overnight moves become gaps).

Over 400 lines on purpose: every number the simulator serves comes from this
one module, so REST history and the live tape cannot drift apart.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from marketdata.calendar import NEW_YORK, nyse_session

HOURS_CHOICES = ("always", "nyse", "extended")
MINUTES_PER_DAY = 1440
FIRST_DAY = (date(1990, 1, 1) - date(1970, 1, 1)).days
LAST_DAY = (date(2060, 1, 1) - date(1970, 1, 1)).days
_HALF_LIFE_DAYS = 250.0
_PHI = math.exp(-math.log(2) / _HALF_LIFE_DAYS)
# The symbol Alpaca's /v2/test stream serves around the clock.
TEST_SYMBOL = "FAKEPACA"

# Rough late-2025 levels, so the demo looks familiar. Others are hash-derived.
_BASE_PRICES = {
    "AAPL": 230.0, "MSFT": 420.0, "NVDA": 135.0, "GOOGL": 170.0, "GOOG": 172.0,
    "AMZN": 200.0, "META": 580.0, "TSLA": 250.0, "AVGO": 170.0, "AMD": 150.0,
    "NFLX": 700.0, "ADBE": 520.0, "CRM": 280.0, "PLTR": 40.0, "INTC": 22.0,
    "CSCO": 55.0, "ORCL": 170.0, "IBM": 215.0, "JPM": 220.0, "BAC": 42.0,
    "BRK.B": 460.0, "WMT": 85.0, "COST": 900.0, "KO": 64.0, "PEP": 160.0,
    "DIS": 110.0, "F": 11.0, "T": 22.0, "PFE": 27.0, "LLY": 800.0,
    "V": 300.0, "MA": 500.0, "XOM": 115.0, "BA": 170.0, "SPY": 580.0,
    "QQQ": 500.0, "DIA": 430.0, "IWM": 220.0, "VOO": 530.0, "VTI": 290.0,
    "GLD": 240.0, "SLV": 28.0, "TLT": 92.0, "ARKK": 55.0, "FAKEPACA": 100.0,
    "BTC/USD": 65000.0, "ETH/USD": 3000.0, "SOL/USD": 150.0,
    "DOGE/USD": 0.15, "AVAX/USD": 30.0, "LINK/USD": 15.0, "LTC/USD": 80.0,
    "XRP/USD": 0.6,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    asset_class: str
    increment: float
    decimals: int
    base_price: float
    daily_vol: float
    lot: float  # size of one lot (1 share for equities)
    size_decimals: int
    mean_lots: float  # mean lots per trade
    key: int  # 63-bit hash of the symbol

    @property
    def always_open(self) -> bool:
        return self.asset_class == "crypto"


def _hash64(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


def _decimals(increment: float) -> int:
    return max(0, -math.floor(math.log10(increment) + 1e-9))


@lru_cache(maxsize=1)
def _universe() -> dict[str, dict]:
    from marketdata.universe import universe_rows

    rows = {row["symbol"]: row for row in universe_rows()}
    rows[TEST_SYMBOL] = {
        "symbol": TEST_SYMBOL,
        "asset_class": "equity",
        "price_increment": 0.01,
        "provider_symbols": {},
        "name": "Alpaca test symbol",
        "exchange": "TEST",
    }
    return rows


def known_symbols() -> list[str]:
    return list(_universe())


def universe_row(symbol: str) -> dict | None:
    return _universe().get(symbol)


@lru_cache(maxsize=512)
def symbol_spec(symbol: str) -> SymbolSpec | None:
    """Simulation parameters of a canonical symbol, None if unknown."""
    row = _universe().get(symbol)
    if row is None:
        return None
    key = _hash64("symbol", symbol)
    increment = float(row["price_increment"])
    asset_class = row["asset_class"]
    base = _BASE_PRICES.get(symbol)
    if base is None:
        u = (key % 1_000_003) / 1_000_003
        base = round(math.exp(math.log(15.0) + u * math.log(450.0 / 15.0)), 2)
    crypto = asset_class == "crypto"
    vol_scale = 0.8 + 0.5 * ((key >> 20) % 1000) / 1000
    daily_vol = (0.030 if crypto else 0.015) * vol_scale
    if crypto:
        lot = 10.0 ** (-math.floor(math.log10(base)))
        lot = max(lot, 1e-8)
        mean_lots = min(max(1000.0 / (base * lot), 1.0), 2000.0)
    else:
        lot = 1.0
        mean_lots = min(max(20000.0 / base, 5.0), 500.0)
    return SymbolSpec(
        symbol=symbol,
        asset_class=asset_class,
        increment=increment,
        decimals=_decimals(increment),
        base_price=base,
        daily_vol=daily_vol,
        lot=lot,
        size_decimals=_decimals(lot) if lot < 1 else 0,
        mean_lots=mean_lots,
        key=key,
    )


def _seed_key(seed: int, spec: SymbolSpec) -> int:
    return (spec.key ^ (seed * 0x9E3779B97F4A7C15)) & ((1 << 64) - 1)


def _philox(seed: int, spec: SymbolSpec, *counter: int) -> np.random.Generator:
    words = [_seed_key(seed, spec)] + [c & ((1 << 64) - 1) for c in counter]
    words = (words + [0, 0, 0])[:3]
    bitgen = np.random.Philox(key=np.array(words[:2], dtype=np.uint64))
    if len(counter) > 1:
        bitgen = np.random.Philox(
            key=np.array(
                [words[0], (words[1] * 0x100000001B3 + words[2]) & ((1 << 64) - 1)],
                dtype=np.uint64,
            )
        )
    return np.random.Generator(bitgen)


@lru_cache(maxsize=256)
def _anchors(seed: int, symbol: str) -> np.ndarray:
    """Log price at 00:00 UTC for every day FIRST_DAY..LAST_DAY+1."""
    spec = symbol_spec(symbol)
    assert spec is not None
    count = LAST_DAY - FIRST_DAY + 2
    shocks = _philox(seed, spec, 0xA4C0).standard_normal(count) * spec.daily_vol
    # x[i] = phi * x[i-1] + shock[i], solved in closed form block by block
    # (phi^-k stays small within a block) instead of a 25k-step Python loop.
    block = 512
    powers = _PHI ** np.arange(block)
    x = np.empty(count)
    level = 0.0
    for lo in range(0, count, block):
        part = shocks[lo : lo + block]
        size = len(part)
        grow = powers[:size]
        x[lo : lo + size] = grow * _PHI * level + grow * np.cumsum(part / grow)
        level = x[lo + size - 1]
    return math.log(spec.base_price) + x


def _round(values: np.ndarray, spec: SymbolSpec) -> np.ndarray:
    return np.round(np.round(values / spec.increment) * spec.increment, spec.decimals)


class DayTable(NamedTuple):
    """Every minute of one UTC day (1440 rows) for one symbol."""

    o: np.ndarray
    h: np.ndarray
    l: np.ndarray  # noqa: E741
    c: np.ndarray
    m: np.ndarray  # centre price of the filler trades
    n: np.ndarray  # trade count
    lots_o: np.ndarray
    lots_h: np.ndarray
    lots_l: np.ndarray
    lots_c: np.ndarray
    lots_f: np.ndarray  # lots of all filler trades
    lots: np.ndarray  # total lots
    quote_volume: np.ndarray  # sum(price * lots) * lot
    vwap: np.ndarray
    o_buy: np.ndarray
    c_buy: np.ndarray


@lru_cache(maxsize=512)
def day_table(seed: int, symbol: str, day: int) -> DayTable:
    """All 1440 minutes of UTC day number `day` (days since 1970-01-01)."""
    spec = symbol_spec(symbol)
    if spec is None:
        raise KeyError(symbol)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError("day outside the simulated range 1990-2059")
    anchors = _anchors(seed, symbol)
    a0, a1 = anchors[day - FIRST_DAY], anchors[day - FIRST_DAY + 1]
    rng = _philox(seed, spec, 0xDA7, day)
    sigma_minute = spec.daily_vol / math.sqrt(MINUTES_PER_DAY)
    walk = np.cumsum(rng.standard_normal(MINUTES_PER_DAY)) * sigma_minute
    frac = np.arange(1, MINUTES_PER_DAY + 1) / MINUTES_PER_DAY
    log_close = a0 + (a1 - a0) * frac + walk - frac * walk[-1]
    raw_close = np.exp(log_close)
    close = _round(raw_close, spec)
    first_open = _round(np.array([math.exp(a0)]), spec)
    minimum = spec.increment
    close = np.maximum(close, minimum)
    first_open = np.maximum(first_open, minimum)
    open_ = np.concatenate([first_open, close[:-1]])

    u = rng.random((10, MINUTES_PER_DAY))
    excursion = raw_close * sigma_minute * 0.6
    inc = spec.increment
    high = np.maximum(open_, close) - np.log1p(-u[0]) * excursion
    high = np.round(np.ceil(high / inc - 1e-6) * inc, spec.decimals)
    low = np.minimum(open_, close) + np.log1p(-u[1]) * excursion
    low = np.round(np.floor(low / inc + 1e-6) * inc, spec.decimals)
    low = np.maximum(low, minimum)
    steps = np.round((high - low) / inc)
    centre = np.round(low + np.round(u[2] * steps) * inc, spec.decimals)

    n_span = 60 if spec.always_open else 90
    n = 4 + np.floor(u[3] ** 2 * n_span).astype(np.int64)

    def lots_draw(row: np.ndarray) -> np.ndarray:
        return 1 + np.floor(-np.log1p(-row) * spec.mean_lots).astype(np.int64)

    lots_o, lots_h, lots_l, lots_c = (lots_draw(u[i]) for i in (4, 5, 6, 7))
    fillers = n - 4
    lots_f = fillers + np.floor(-np.log1p(-u[8]) * fillers * spec.mean_lots).astype(
        np.int64
    )
    even = fillers % 2 == 0
    lots_f = np.where(even, lots_f + lots_f % 2, lots_f)
    lots = lots_o + lots_h + lots_l + lots_c + lots_f
    quote = (
        open_ * lots_o + high * lots_h + low * lots_l + close * lots_c + centre * lots_f
    )
    vwap = np.round(quote / lots, spec.decimals + 4)
    bits = np.floor(u[9] * 4).astype(np.int64)
    return DayTable(
        o=open_,
        h=high,
        l=low,
        c=close,
        m=centre,
        n=n,
        lots_o=lots_o,
        lots_h=lots_h,
        lots_l=lots_l,
        lots_c=lots_c,
        lots_f=lots_f,
        lots=lots,
        quote_volume=quote * spec.lot,
        vwap=vwap,
        o_buy=(bits & 1).astype(bool),
        c_buy=(bits & 2).astype(bool),
    )


def open_mask(symbol: str, day: int, hours: str) -> np.ndarray | None:
    """Boolean mask of minutes of UTC day `day` with trading, or None for all.
    "nyse" trades the regular session, "extended" pre- and post-market too
    (04:00-20:00 New York, which runs past midnight UTC in winter)."""
    spec = symbol_spec(symbol)
    if hours == "always" or spec is None or spec.always_open:
        return None
    if hours not in ("nyse", "extended"):
        raise ValueError(f"unknown hours {hours!r}")
    mask = np.zeros(MINUTES_PER_DAY, dtype=bool)
    midnight = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)
    for local_day in (day - 1, day):
        session = nyse_session(
            date(1970, 1, 1) + timedelta(days=local_day), extended=hours == "extended"
        )
        if session is not None:
            lo = int((session.open - midnight).total_seconds() // 60)
            hi = int((session.close - midnight).total_seconds() // 60)
            if hi > 0 and lo < MINUTES_PER_DAY:
                mask[max(lo, 0) : min(hi, MINUTES_PER_DAY)] = True
    return mask


def is_trading_minute(symbol: str, minute_ts: int, *, hours: str) -> bool:
    day, index = divmod(minute_ts // 60, MINUTES_PER_DAY)
    mask = open_mask(symbol, day, hours)
    return True if mask is None else bool(mask[index])


class Bars(NamedTuple):
    """Column arrays; `ts` = bar start in epoch seconds. `volume` in units."""

    ts: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray  # noqa: E741
    c: np.ndarray
    volume: np.ndarray
    vwap: np.ndarray
    n: np.ndarray
    quote_volume: np.ndarray
    taker_buy_volume: np.ndarray
    taker_buy_quote: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.ts)

    def rows(self) -> list[tuple]:
        """(ts datetime, o, h, l, c, v, vwap, n) as Python values."""
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return [
            (epoch + timedelta(seconds=int(t)), o, h, l, c, v, vw, int(n))
            for t, o, h, l, c, v, vw, n in zip(  # noqa: E741
                self.ts.tolist(),
                self.o.tolist(),
                self.h.tolist(),
                self.l.tolist(),
                self.c.tolist(),
                self.volume.tolist(),
                self.vwap.tolist(),
                self.n.tolist(),
                strict=True,
            )
        ]

    def slice(self, lo: int, hi: int) -> Bars:
        return Bars(*(col[lo:hi] for col in self))


def _empty_bars() -> Bars:
    f = np.empty(0)
    return Bars(
        np.empty(0, dtype=np.int64), f, f, f, f, f, f, np.empty(0, np.int64), f, f, f
    )


def _to_epoch(value: datetime | int | float) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return math.floor(value.timestamp())
    return math.floor(value)


def _day_bars(seed: int, spec: SymbolSpec, day: int, lo: int, hi: int, mask) -> Bars:
    table = day_table(seed, spec.symbol, day)
    idx = np.arange(lo, hi)
    if mask is not None:
        idx = idx[mask[lo:hi]]
    if not len(idx):
        return _empty_bars()
    lot = spec.lot
    lots = table.lots[idx]
    pair_lots = _pair_lots(table, idx)
    buy_lots = (
        table.lots_h[idx]
        + pair_lots
        + table.o_buy[idx] * table.lots_o[idx]
        + table.c_buy[idx] * table.lots_c[idx]
    )
    buy_quote = (
        table.lots_h[idx] * table.h[idx]
        + pair_lots * table.m[idx]
        + table.o_buy[idx] * table.lots_o[idx] * table.o[idx]
        + table.c_buy[idx] * table.lots_c[idx] * table.c[idx]
    ) * lot
    return Bars(
        ts=(day * MINUTES_PER_DAY + idx) * 60,
        o=table.o[idx],
        h=table.h[idx],
        l=table.l[idx],
        c=table.c[idx],
        volume=np.round(lots * lot, spec.size_decimals),
        vwap=table.vwap[idx],
        n=table.n[idx],
        quote_volume=table.quote_volume[idx],
        taker_buy_volume=np.round(buy_lots * lot, spec.size_decimals),
        taker_buy_quote=buy_quote,
    )


def _pair_lots(table: DayTable, idx: np.ndarray) -> np.ndarray:
    """Lots on each side of the symmetric filler pairs (sum of pair sizes)."""
    fillers = table.n[idx] - 4
    lots_f = table.lots_f[idx]
    odd = fillers % 2 == 1
    pair_lots = np.where(odd, (lots_f - 1) // 2, lots_f // 2)
    return np.where(fillers >= 2, pair_lots, 0)


def concat(parts: list[Bars]) -> Bars:
    if not parts:
        return _empty_bars()
    if len(parts) == 1:
        return parts[0]
    return Bars(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


def minute_bars(
    symbol: str,
    start: datetime | int,
    end: datetime | int,
    *,
    seed: int,
    hours: str = "always",
    limit: int | None = None,
    descending: bool = False,
) -> Bars:
    """Minute bars with start in [start, end) (epoch seconds or aware
    datetimes), oldest first (or newest first with `descending`), at most
    `limit`. Unknown symbols give no bars."""
    spec = symbol_spec(symbol)
    if spec is None:
        return _empty_bars()
    lo_min = -(-_to_epoch(start) // 60)
    hi_min = -(-_to_epoch(end) // 60)
    lo_min = max(lo_min, FIRST_DAY * MINUTES_PER_DAY)
    hi_min = min(hi_min, (LAST_DAY + 1) * MINUTES_PER_DAY)
    parts: list[Bars] = []
    count = 0
    days = range(lo_min // MINUTES_PER_DAY, (hi_min - 1) // MINUTES_PER_DAY + 1)
    if descending:
        days = reversed(days)
    for day in days:
        if hi_min <= lo_min:
            break
        first = max(lo_min - day * MINUTES_PER_DAY, 0)
        last = min(hi_min - day * MINUTES_PER_DAY, MINUTES_PER_DAY)
        mask = open_mask(symbol, day, hours)
        if mask is not None and not mask[first:last].any():
            continue
        part = _day_bars(seed, spec, day, first, last, mask)
        if descending:
            part = Bars(*(col[::-1] for col in part))
        parts.append(part)
        count += len(part)
        if limit is not None and count >= limit:
            break
    bars = concat(parts)
    if limit is not None and len(bars) > limit:
        bars = bars.slice(0, limit)
    return bars


def minute_bar(symbol: str, minute_ts: int, *, seed: int) -> Bars:
    """The single minute starting at `minute_ts` (ignores trading hours)."""
    return minute_bars(symbol, minute_ts, minute_ts + 60, seed=seed)


# --- aggregation -----------------------------------------------------------------


def aggregate(bars: Bars, keys: np.ndarray) -> Bars:
    """Group consecutive bars with equal `keys` (bucket start, epoch s)."""
    if not len(bars):
        return bars
    change = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(keys)]])
    volume = np.add.reduceat(bars.volume, starts)
    quote = np.add.reduceat(bars.quote_volume, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        vw_num = np.add.reduceat(bars.vwap * bars.volume, starts)
        vwap = np.where(
            volume > 0, vw_num / np.where(volume > 0, volume, 1), bars.c[ends - 1]
        )
    return Bars(
        ts=keys[starts],
        o=bars.o[starts],
        h=np.maximum.reduceat(bars.h, starts),
        l=np.minimum.reduceat(bars.l, starts),
        c=bars.c[ends - 1],
        volume=volume,
        vwap=np.round(vwap, 8),
        n=np.add.reduceat(bars.n, starts),
        quote_volume=quote,
        taker_buy_volume=np.add.reduceat(bars.taker_buy_volume, starts),
        taker_buy_quote=np.add.reduceat(bars.taker_buy_quote, starts),
    )


@lru_cache(maxsize=4096)
def _local_midnight(day: int, zone_key: str) -> int:
    """Epoch seconds of the local midnight starting the local date that
    contains noon UTC of `day` (New York dates for equities)."""
    noon = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day, hours=12)
    if zone_key == "UTC":
        local = noon.date()
        return int(datetime(local.year, local.month, local.day, tzinfo=UTC).timestamp())
    local = noon.astimezone(NEW_YORK).date()
    return int(
        datetime(local.year, local.month, local.day, tzinfo=NEW_YORK).timestamp()
    )


def day_keys(ts: np.ndarray, *, symbol: str) -> np.ndarray:
    """Start (epoch s) of the trading day of each minute: midnight New York
    for equities (Alpaca's daily-bar stamp), midnight UTC for crypto."""
    spec = symbol_spec(symbol)
    zone = "UTC" if spec is None or spec.always_open else "NY"
    if zone == "UTC":
        return ts - ts % 86400
    # A New York day spans two UTC days; 04:00-05:00 UTC is the boundary.
    days, inverse = np.unique(ts // 86400, return_inverse=True)
    today = np.array([_local_midnight(d, "NY") for d in days.tolist()], dtype=ts.dtype)
    before = np.array(
        [_local_midnight(d - 1, "NY") for d in days.tolist()], dtype=ts.dtype
    )
    today, before = today[inverse], before[inverse]
    return np.where(ts >= today, today, before)


def bucket_keys(ts: np.ndarray, *, symbol: str, unit: str, amount: int) -> np.ndarray:
    """Bucket start for each minute start `ts`: unit in min|hour|day|week|month."""
    if unit == "min":
        width = 60 * amount
        return ts - ts % width
    if unit == "hour":
        width = 3600 * amount
        return ts - ts % width
    daily = day_keys(ts, symbol=symbol)
    if unit == "day":
        return daily
    spec = symbol_spec(symbol)
    zone = UTC if spec is None or spec.always_open else NEW_YORK
    values, inverse = np.unique(daily, return_inverse=True)
    starts = []
    for value in values.tolist():
        local = datetime.fromtimestamp(value, tz=zone).date()
        if unit == "week":
            first = local - timedelta(days=local.weekday())
        elif unit == "month":
            months = (local.year * 12 + local.month - 1) // amount * amount
            first = date(months // 12, months % 12 + 1, 1)
        else:
            raise ValueError(unit)
        starts.append(
            int(datetime(first.year, first.month, first.day, tzinfo=zone).timestamp())
        )
    return np.array(starts, dtype=daily.dtype)[inverse] if starts else daily.copy()


def bars(
    symbol: str,
    start: datetime | int,
    end: datetime | int,
    *,
    seed: int,
    hours: str = "always",
    unit: str = "min",
    amount: int = 1,
) -> Bars:
    """Bars of any timeframe whose bucket starts in [start, end)."""
    if unit == "min" and amount == 1:
        return minute_bars(symbol, start, end, seed=seed, hours=hours)
    minutes = minute_bars(symbol, start, end, seed=seed, hours=hours)
    return aggregate(
        minutes, bucket_keys(minutes.ts, symbol=symbol, unit=unit, amount=amount)
    )


def daily_bars(
    symbol: str,
    start: datetime | int,
    end: datetime | int,
    *,
    seed: int,
    hours: str = "nyse",
) -> Bars:
    """Daily bars (stamped at local midnight) aggregated from minute bars."""
    return bars(symbol, start, end, seed=seed, hours=hours, unit="day")


# --- ticks ------------------------------------------------------------------------


class Ticks(NamedTuple):
    """Trades of one minute, in time order. `offset_ns` from the minute start."""

    offset_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray  # units (shares or coins)
    buy: np.ndarray  # taker side is buy
    trade_id: np.ndarray


@lru_cache(maxsize=8192)
def minute_ticks(symbol: str, minute_ts: int, *, seed: int) -> Ticks:
    """The trades realizing exactly the minute bar starting at `minute_ts`:
    first = open, last = close, max = high, min = low, sum of sizes = volume,
    count = n and sum(price*size)/volume = vwap."""
    spec = symbol_spec(symbol)
    if spec is None:
        raise KeyError(symbol)
    minute_index = minute_ts // 60
    day, index = divmod(minute_index, MINUTES_PER_DAY)
    table = day_table(seed, symbol, day)
    n = int(table.n[index])
    o, h, lo, c, m = (
        float(col[index]) for col in (table.o, table.h, table.l, table.c, table.m)
    )
    lots_f = int(table.lots_f[index])
    fillers = n - 4
    pairs, singles = divmod(fillers, 2)
    if not pairs:
        pair_total = 0
    else:
        pair_total = (lots_f - 1) // 2 if singles else lots_f // 2
    rng = _philox(seed, spec, 0x71C, minute_index)
    prices = [h, lo]
    sizes = [int(table.lots_h[index]), int(table.lots_l[index])]
    buys = [True, False]
    if pairs:
        if pairs == 1:
            parts = np.array([pair_total])
        else:
            cuts = np.sort(rng.choice(pair_total - 1, pairs - 1, replace=False) + 1)
            parts = np.diff(np.concatenate([[0], cuts, [pair_total]]))
        room = int(round(min(h - m, m - lo) / spec.increment))
        deltas = rng.integers(0, room + 1, pairs) * spec.increment
        for part, delta in zip(parts.tolist(), deltas.tolist(), strict=True):
            prices += [round(m + delta, spec.decimals), round(m - delta, spec.decimals)]
            sizes += [part, part]
            buys += [True, False]
    if singles:
        prices.append(m)
        sizes.append(lots_f - 2 * pair_total)
        buys.append(False)
    order = rng.permutation(len(prices))
    prices = [o] + [prices[i] for i in order] + [c]
    sizes = (
        [int(table.lots_o[index])]
        + [sizes[i] for i in order]
        + [int(table.lots_c[index])]
    )
    buys = (
        [bool(table.o_buy[index])]
        + [buys[i] for i in order]
        + [bool(table.c_buy[index])]
    )
    offsets = np.sort(rng.integers(0, 60_000_000_000, n))
    size_units = np.array(sizes, dtype=np.float64) * spec.lot
    if spec.lot < 1:
        size_units = np.round(size_units, spec.size_decimals)
    return Ticks(
        offset_ns=offsets,
        price=np.array(prices),
        size=size_units,
        buy=np.array(buys),
        trade_id=minute_index * 10_000 + np.arange(n, dtype=np.int64),
    )


def quote_at(spec: SymbolSpec, last_price: float, draw: np.ndarray) -> tuple:
    """Bid/ask around `last_price` from 4 uniforms: (bid, bid_size, ask, ask_size)."""
    inc = spec.increment
    spread = inc * (1 + np.floor(draw[0] * 3))
    bid = np.round(
        np.floor((last_price - spread * draw[1]) / inc + 1e-6) * inc, spec.decimals
    )
    ask = np.round(bid + spread, spec.decimals)
    if spec.lot < 1:
        bid_size = np.round(
            (1 + np.floor(draw[2] * 50)) * spec.lot * spec.mean_lots / 10,
            spec.size_decimals,
        )
        ask_size = np.round(
            (1 + np.floor(draw[3] * 50)) * spec.lot * spec.mean_lots / 10,
            spec.size_decimals,
        )
    else:
        bid_size = 1 + np.floor(draw[2] * 9)
        ask_size = 1 + np.floor(draw[3] * 9)
    return bid, bid_size, ask, ask_size


def quote_draws(
    seed: int, spec: SymbolSpec, minute_index: int, count: int
) -> np.ndarray:
    """(count, 5) uniforms for the quotes of one minute: time + 4 quote draws."""
    return _philox(seed, spec, 0x0707E, minute_index).random((count, 5))
