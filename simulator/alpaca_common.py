"""What the Alpaca stream and REST halves share: the simulator's symbols as
Alpaca names them, the tape letter of a symbol, a bar's JSON object, the
latest trade, quote and bar (REST latest and snapshots), and the delay of the
`delayed_sip` feed."""

from __future__ import annotations

from functools import lru_cache

from simulator import prices
from simulator.state import ExchangeState
from simulator.tape import NS, rfc3339_ns, rfc3339_s

#: how far `delayed_sip` lags the live feed
DELAY_NS = 15 * 60 * NS
_TAPES = {"NASDAQ": "C", "NYSE": "A"}


@lru_cache(maxsize=1)
def feed_symbols() -> dict[str, dict[str, str]]:
    """Alpaca symbol -> canonical symbol, per feed kind ("stock", "crypto", "test")."""
    stock: dict[str, str] = {}
    crypto: dict[str, str] = {}
    for symbol in prices.known_symbols():
        row = prices.universe_row(symbol)
        if symbol == prices.TEST_SYMBOL:
            continue
        alpaca = row["provider_symbols"].get("alpaca") or symbol
        if row["asset_class"] == "crypto":
            crypto[alpaca] = symbol
        else:
            stock[alpaca] = symbol
    return {
        "stock": stock,
        "crypto": crypto,
        "test": {prices.TEST_SYMBOL: prices.TEST_SYMBOL},
    }


def tape_of(symbol: str) -> str:
    row = prices.universe_row(symbol) or {}
    return _TAPES.get(row.get("exchange", ""), "B")


def bar_json(bars: prices.Bars, i: int, *, crypto: bool) -> dict:
    volume = float(bars.volume[i])
    return {
        "t": rfc3339_s(int(bars.ts[i])),
        "o": float(bars.o[i]),
        "h": float(bars.h[i]),
        "l": float(bars.l[i]),
        "c": float(bars.c[i]),
        "v": volume if crypto else int(volume),
        "n": int(bars.n[i]),
        "vw": float(bars.vwap[i]),
    }


def latest(
    sim: ExchangeState, symbol: str, what: str, *, crypto: bool, now_ns: int
) -> dict | None:
    """The latest of `what` ("trades", "quotes" or "bars") of `symbol` at
    `now_ns`, as Alpaca's REST returns it; None for an unknown symbol."""
    if prices.symbol_spec(symbol) is None:
        return None
    tape = sim.tape
    if what == "trades":
        trade = tape.last_trade(symbol, now_ns)
        if trade is None:
            return None
        ts, price, size, buy, trade_id = trade
        if crypto:
            return {
                "t": rfc3339_ns(ts),
                "p": price,
                "s": size,
                "i": trade_id,
                "tks": "B" if buy else "S",
            }
        return {
            "t": rfc3339_ns(ts),
            "x": "V",
            "p": price,
            "s": int(size),
            "c": ["@"],
            "i": trade_id,
            "z": tape_of(symbol),
        }
    if what == "quotes":
        quote = tape.last_quote(symbol, now_ns)
        if quote is None:
            return None
        ts, bp, bs, ap, as_ = quote
        if crypto:
            return {"t": rfc3339_ns(ts), "bp": bp, "bs": bs, "ap": ap, "as": as_}
        return {
            "t": rfc3339_ns(ts),
            "ax": "V",
            "ap": ap,
            "as": int(as_),
            "bx": "V",
            "bp": bp,
            "bs": int(bs),
            "c": ["R"],
            "z": tape_of(symbol),
        }
    now_s = now_ns // NS
    bars = prices.minute_bars(
        symbol,
        now_s - 14 * 86400,
        now_s // 60 * 60,
        seed=sim.seed,
        hours=tape.hours_for(symbol),
        limit=1,
        descending=True,
    )
    return bar_json(bars, 0, crypto=crypto) if len(bars) else None
