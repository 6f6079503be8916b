"""Candles of any interval, including the one still forming at `now`.

Closed minutes come from `prices` (closed-form), the running minute from its
ticks up to `now`, so a running candle grows into exactly the closed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from simulator import prices
from simulator.tape import NS, Tape

#: Binance kline interval -> (unit, amount)
INTERVALS: dict[str, tuple[str, int]] = {
    "1m": ("min", 1),
    "3m": ("min", 3),
    "5m": ("min", 5),
    "15m": ("min", 15),
    "30m": ("min", 30),
    "1h": ("hour", 1),
    "2h": ("hour", 2),
    "4h": ("hour", 4),
    "6h": ("hour", 6),
    "8h": ("hour", 8),
    "12h": ("hour", 12),
    "1d": ("day", 1),
    "1w": ("week", 1),
    "1M": ("month", 1),
}
_WIDTH = {"min": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


@dataclass(frozen=True, slots=True)
class Candle:
    start: int  # epoch s
    end: int  # epoch s, exclusive
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    quote_volume: float
    taker_buy_volume: float
    taker_buy_quote: float
    first_id: int
    last_id: int
    closed: bool


def bucket_start(symbol: str, ts: int, unit: str, amount: int) -> int:
    return int(
        prices.bucket_keys(np.array([ts]), symbol=symbol, unit=unit, amount=amount)[0]
    )


def bucket_end(start: int, unit: str, amount: int) -> int:
    if unit == "month":
        first = datetime.fromtimestamp(start, tz=UTC)
        months = first.year * 12 + first.month - 1 + amount
        return int(datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC).timestamp())
    return start + _WIDTH[unit] * amount


#: minutes are generated at most this many seconds at a time for aggregates
CHUNK_SECONDS = 31 * 86400


def aggregated(
    symbol: str,
    lo: int,
    hi: int,
    *,
    seed: int,
    hours: str,
    unit: str,
    amount: int,
    limit: int | None = None,
    descending: bool = False,
) -> prices.Bars:
    """Bars of any timeframe built from the minutes in [lo, hi), generated
    in bucket-aligned chunks (bounded memory; stops after `limit` bars), so
    decades of daily or monthly bars never materialize decades of minutes.
    A bucket cut by `lo` or `hi` is aggregated from its minutes inside."""
    if unit == "min" and amount == 1:
        return prices.minute_bars(
            symbol, lo, hi, seed=seed, hours=hours, limit=limit, descending=descending
        )
    lo = max(lo, prices.FIRST_DAY * 86400)
    hi = min(hi, (prices.LAST_DAY + 1) * 86400)
    parts: list[prices.Bars] = []
    count = 0
    cursor = hi if descending else lo
    while (cursor > lo if descending else cursor < hi) and (
        limit is None or count < limit
    ):
        if descending:
            edge = max(lo, bucket_start(symbol, cursor - CHUNK_SECONDS, unit, amount))
            chunk_lo, chunk_hi, cursor = edge, cursor, edge
        else:
            edge = bucket_start(symbol, cursor + CHUNK_SECONDS, unit, amount)
            if edge <= cursor:
                edge = bucket_end(
                    bucket_start(symbol, cursor, unit, amount), unit, amount
                )
            chunk_lo, chunk_hi, cursor = cursor, min(edge, hi), min(edge, hi)
        part = prices.bars(
            symbol, chunk_lo, chunk_hi, seed=seed, hours=hours, unit=unit, amount=amount
        )
        if descending:
            part = prices.Bars(*(col[::-1] for col in part))
        parts.append(part)
        count += len(part)
    bars = prices.concat(parts)
    if limit is not None and len(bars) > limit:
        bars = bars.slice(0, limit)
    return bars


def bars_between(
    symbol: str,
    start: int,
    end: int,
    *,
    cap: int,
    seed: int,
    hours: str,
    unit: str,
    amount: int,
    limit: int | None = None,
    descending: bool = False,
) -> prices.Bars:
    """Bars whose bucket starts in [start, end] (both inclusive, as Alpaca and
    Finnhub take them), built from minutes before `cap` (the minutes that are
    over), so the last bucket may still be forming. Oldest first (newest
    first with `descending`), at most `limit`."""
    last_end = bucket_end(bucket_start(symbol, end, unit, amount), unit, amount)
    if unit == "min" and amount == 1:
        last_end = end + 1
    lo = start
    if unit != "min" or amount != 1:
        # a bucket cut by `start` is not served (its key would precede start)
        first = bucket_start(symbol, start, unit, amount)
        if first < start:
            lo = bucket_end(first, unit, amount)
    return aggregated(
        symbol,
        lo,
        min(last_end, cap),
        seed=seed,
        hours=hours,
        unit=unit,
        amount=amount,
        limit=limit,
        descending=descending,
    )


def candle(tape: Tape, symbol: str, start: int, end: int, now_ns: int) -> Candle | None:
    """The candle [start, end) as known at `now_ns` (None if nothing traded
    yet and there is no previous price)."""
    hours = tape.hours_for(symbol)
    now_minute = now_ns // NS // 60 * 60
    closed_until = min(end, now_minute)
    minutes = prices.minute_bars(
        symbol, start, closed_until, seed=tape.seed, hours=hours
    )
    parts = []
    if len(minutes):
        ids_first = int(minutes.ts[0]) // 60 * 10_000
        ids_last = int(minutes.ts[-1]) // 60 * 10_000 + int(minutes.n[-1]) - 1
        parts.append(
            (
                float(minutes.o[0]),
                float(minutes.h.max()),
                float(minutes.l.min()),
                float(minutes.c[-1]),
                float(minutes.volume.sum()),
                int(minutes.n.sum()),
                float(minutes.quote_volume.sum()),
                float(minutes.taker_buy_volume.sum()),
                float(minutes.taker_buy_quote.sum()),
                ids_first,
                ids_last,
            )
        )
    if start <= now_minute < end and tape.trading(symbol, now_minute):
        ticks = tape.partial_minute(symbol, now_minute, now_ns)
        if len(ticks.price):
            buy = ticks.buy
            parts.append(
                (
                    float(ticks.price[0]),
                    float(ticks.price.max()),
                    float(ticks.price.min()),
                    float(ticks.price[-1]),
                    float(ticks.size.sum()),
                    len(ticks.price),
                    float((ticks.price * ticks.size).sum()),
                    float(ticks.size[buy].sum()),
                    float((ticks.price[buy] * ticks.size[buy]).sum()),
                    int(ticks.trade_id[0]),
                    int(ticks.trade_id[-1]),
                )
            )
    closed = now_ns >= end * NS
    if not parts:
        if prices.symbol_spec(symbol) is None:
            return None
        if start > now_ns // NS:
            return None
        reference = prices.minute_bar(symbol, now_minute, seed=tape.seed)
        price = float(reference.o[0])
        return Candle(
            start,
            end,
            price,
            price,
            price,
            price,
            0.0,
            0,
            0.0,
            0.0,
            0.0,
            -1,
            -1,
            closed,
        )
    first, last = parts[0], parts[-1]
    spec = prices.symbol_spec(symbol)
    size_decimals = spec.size_decimals if spec else 8
    return Candle(
        start=start,
        end=end,
        open=first[0],
        high=max(p[1] for p in parts),
        low=min(p[2] for p in parts),
        close=last[3],
        volume=round(sum(p[4] for p in parts), size_decimals),
        trades=sum(p[5] for p in parts),
        quote_volume=sum(p[6] for p in parts),
        taker_buy_volume=round(sum(p[7] for p in parts), size_decimals),
        taker_buy_quote=sum(p[8] for p in parts),
        first_id=first[9],
        last_id=last[10],
        closed=closed,
    )


def regular_hours(symbol: str) -> str:
    """The `hours` of the regular session: NYSE's for equities (crypto trades
    all day whatever the hours; the Alpaca test symbol never closes)."""
    return "always" if symbol == prices.TEST_SYMBOL else "nyse"


def day_summary(tape: Tape, symbol: str, now_ns: int) -> dict | None:
    """Finnhub-style quote: current day open/high/low, last price, previous
    close (equities: New York trading days, the close of the previous
    regular session; crypto: UTC days)."""
    trade = tape.last_trade(symbol, now_ns)
    if trade is None:
        return None
    last_ts = trade[0] // NS
    today = bucket_start(symbol, last_ts, "day", 1)
    today_candle = candle(tape, symbol, today, bucket_end(today, "day", 1), trade[0])
    previous = prices.minute_bars(
        symbol,
        today - 14 * 86400,
        today,
        seed=tape.seed,
        hours=regular_hours(symbol),
        limit=1,
        descending=True,
    )
    previous_close = float(previous.c[0]) if len(previous) else today_candle.open
    return {
        "o": today_candle.open,
        "h": today_candle.high,
        "l": today_candle.low,
        "c": trade[1],
        "pc": previous_close,
        "t": last_ts,
    }
