"""Latest-state ("snapshot") REST endpoints of the simulator (providers.md §6).

- Alpaca stocks: `GET /v2/stocks/snapshots?symbols=AAPL,MSFT&feed=iex` -> an
  object keyed by symbol; `GET /v2/stocks/{symbol}/snapshot` -> the same
  object plus `"symbol"` (404 for an unknown symbol). Unknown symbols are
  absent from the multi-symbol answer.
- Alpaca crypto: `GET /v1beta3/crypto/us/snapshots?symbols=BTC/USD` ->
  `{"snapshots": {...}}`.
- Binance: `GET /api/v3/ticker/24hr?symbol=BTCUSDT` (an object) or
  `?symbols=["BTCUSDT","ETHUSDT"]` (a list; neither: every symbol).

Each snapshot holds `latestTrade`, `latestQuote`, `minuteBar` (the last
closed minute), `dailyBar` and `prevDailyBar`. Values come from the same tape
as the stream and the bars. Equity daily bars aggregate the regular session
only (NYSE 09:30-16:00 New York, whatever the simulator's `hours`), so
`prevDailyBar.c` is the previous regular-session close; `dailyBar` is the
latest regular session that has begun (still forming while it is open).
Crypto daily bars are UTC days: `dailyBar` is today's so far,
`prevDailyBar` yesterday's. Binance's 24-hour window is rolling and starts at
the minute 24 h before the current one (`openTime`); `prevClosePrice` is the
close of the minute before it.

Fault switches (`rest_429_rate`, `rest_500_rate`) apply through
`control.fault_middleware`; authentication is that of the neighbouring
endpoints (Alpaca stocks: keys required; crypto and Binance: none).
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from simulator import candles, prices
from simulator.alpaca_common import DELAY_NS, bar_json, feed_symbols, latest
from simulator.alpaca_rest import (
    FEEDS,
    FORBIDDEN,
    RestError,
    authorized,
    error_response,
    symbols_param,
)
from simulator.binance_common import (
    SYMBOL_CHARS,
    binance_symbols,
    error,
    num,
    weight,
)
from simulator.tape import NS, Tape, rfc3339_s
from simulator.wire import SIM, json_response

DAY = 86400


def _candle_json(c: candles.Candle, *, crypto: bool) -> dict:
    volume = c.volume
    return {
        "t": rfc3339_s(c.start),
        "o": c.open,
        "h": c.high,
        "l": c.low,
        "c": c.close,
        "v": volume if crypto else int(volume),
        "n": c.trades,
        "vw": round(c.quote_volume / volume, 6) if volume else c.close,
    }


def daily_bars(tape: Tape, symbol: str, now_ns: int) -> tuple[dict | None, dict | None]:
    """(dailyBar, prevDailyBar) as Alpaca bar objects, see the module docstring."""
    spec = prices.symbol_spec(symbol)
    if spec is None:
        return None, None
    crypto = spec.always_open
    if crypto:
        regular = tape
        day = now_ns // NS // DAY * DAY
    else:
        regular = Tape(seed=tape.seed, hours=candles.regular_hours(symbol), rate=1)
        trade = regular.last_trade(symbol, now_ns)
        if trade is None:
            return None, None
        day = candles.bucket_start(symbol, trade[0] // NS, "day", 1)
    today = candles.candle(
        regular, symbol, day, candles.bucket_end(day, "day", 1), now_ns
    )
    hours = regular.hours_for(symbol)
    before = prices.minute_bars(
        symbol,
        day - 14 * DAY,
        day,
        seed=tape.seed,
        hours=hours,
        limit=1,
        descending=True,
    )
    previous = None
    if len(before):
        prev_day = candles.bucket_start(symbol, int(before.ts[0]), "day", 1)
        rows = prices.bars(
            symbol, prev_day, day, seed=tape.seed, hours=hours, unit="day"
        )
        if len(rows):
            previous = bar_json(rows, -1, crypto=crypto)
    current = _candle_json(today, crypto=crypto) if today is not None else None
    return current, previous


def snapshot(sim, symbol: str, *, crypto: bool, now_ns: int) -> dict | None:
    """One Alpaca snapshot object of canonical `symbol`, None without data."""
    trade = latest(sim, symbol, "trades", crypto=crypto, now_ns=now_ns)
    if trade is None:
        return None
    daily, previous = daily_bars(sim.tape, symbol, now_ns)
    return {
        "latestTrade": trade,
        "latestQuote": latest(sim, symbol, "quotes", crypto=crypto, now_ns=now_ns),
        "minuteBar": latest(sim, symbol, "bars", crypto=crypto, now_ns=now_ns),
        "dailyBar": daily,
        "prevDailyBar": previous,
    }


def _snapshots(sim, symbols: list[str], mapping: dict, *, crypto: bool, now_ns: int):
    out = {}
    for symbol in dict.fromkeys(symbols):
        canonical = mapping.get(symbol)
        value = (
            snapshot(sim, canonical, crypto=crypto, now_ns=now_ns)
            if canonical
            else None
        )
        if value is not None:
            out[symbol] = value
    return out


async def _in_thread(func, *args, **kwargs):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: func(*args, **kwargs))


def _stock_now(request: web.Request) -> int:
    feed = request.query.get("feed", "iex")
    if feed not in FEEDS:
        raise RestError(400, f"invalid feed: {feed}", 40010001)
    now = request.app[SIM].now_ns()
    return now - DELAY_NS if feed == "delayed_sip" else now


async def stock_snapshots(request: web.Request) -> web.Response:
    if not authorized(request, required=True):
        return json_response(FORBIDDEN, status=403)
    sim = request.app[SIM]
    mapping = feed_symbols()["stock"] | feed_symbols()["test"]
    try:
        now = _stock_now(request)
        single = request.match_info.get("symbol")
        symbols = [single] if single else symbols_param(request)
    except RestError as exc:
        return error_response(exc)
    out = await _in_thread(_snapshots, sim, symbols, mapping, crypto=False, now_ns=now)
    if not single:
        return json_response(out)
    if single not in out:
        return json_response(
            {"code": 40410000, "message": f"no snapshot found for {single}"},
            status=404,
        )
    return json_response({"symbol": single, **out[single]})


async def crypto_snapshots(request: web.Request) -> web.Response:
    if not authorized(request, required=False):
        return json_response(FORBIDDEN, status=403)
    sim = request.app[SIM]
    try:
        symbols = symbols_param(request)
    except RestError as exc:
        return error_response(exc)
    out = await _in_thread(
        _snapshots,
        sim,
        symbols,
        feed_symbols()["crypto"],
        crypto=True,
        now_ns=sim.now_ns(),
    )
    return json_response({"snapshots": out})


# --- Binance -----------------------------------------------------------------------


def ticker_24hr_row(sim, binance_symbol: str, symbol: str, now_ns: int) -> dict:
    """Binance's rolling 24-hour statistics of `symbol` at `now_ns`."""
    tape = sim.tape
    now_s = now_ns // NS
    start = now_s // 60 * 60 - DAY
    window = candles.candle(tape, symbol, start, now_s + 1, now_ns)
    before = prices.minute_bar(symbol, start - 60, seed=tape.seed)
    prev_close = float(before.c[0]) if len(before) else window.open
    trade = tape.last_trade(symbol, now_ns)
    quote = tape.last_quote(symbol, now_ns)
    change = window.close - window.open
    volume = window.volume
    first_id, last_id = (window.first_id, window.last_id) if window.trades else (-1, -1)
    return {
        "symbol": binance_symbol,
        "priceChange": num(change),
        "priceChangePercent": f"{change / window.open * 100:.3f}"
        if window.open
        else "0.000",
        "weightedAvgPrice": num(window.quote_volume / volume if volume else 0.0),
        "prevClosePrice": num(prev_close),
        "lastPrice": num(window.close),
        "lastQty": num(trade[2] if trade else 0.0),
        "bidPrice": num(quote[1] if quote else 0.0),
        "bidQty": num(quote[2] if quote else 0.0),
        "askPrice": num(quote[3] if quote else 0.0),
        "askQty": num(quote[4] if quote else 0.0),
        "openPrice": num(window.open),
        "highPrice": num(window.high),
        "lowPrice": num(window.low),
        "volume": num(volume),
        "quoteVolume": num(window.quote_volume),
        "openTime": start * 1000,
        "closeTime": now_ns // 1_000_000,
        "firstId": first_id,
        "lastId": last_id,
        "count": window.trades,
    }


def _ticker_weight(count: int | None) -> int:
    """Binance's request weight of ticker/24hr by number of symbols (None: all)."""
    if count is None or count > 100:
        return 80
    return 2 if count <= 20 else 40


_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'


def _parse_symbols(raw: str) -> list[str] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(s, str) and SYMBOL_CHARS.match(s) for s in value):
        return None
    return list(dict.fromkeys(value))


async def ticker_24hr(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    q = request.query
    known = binance_symbols()
    if "symbol" in q and "symbols" in q:
        headers = weight(request, 2)
        return error(-1128, "Combination of optional parameters invalid.", headers)
    if "symbol" in q:
        headers = weight(request, 2)
        raw = q["symbol"]
        if not SYMBOL_CHARS.match(raw):
            return error(
                -1100,
                "Illegal characters found in parameter 'symbol'; legal range is "
                "'^[A-Z0-9-_.]{1,20}$'.",
                headers,
            )
        if raw not in known:
            return error(-1121, "Invalid symbol.", headers)
        row = await _in_thread(ticker_24hr_row, sim, raw, known[raw], sim.now_ns())
        return json_response(row, headers=headers)
    if "symbols" in q:
        symbols = _parse_symbols(q["symbols"])
        headers = weight(request, _ticker_weight(len(symbols or ())))
        if symbols is None:
            return error(
                -1100,
                "Illegal characters found in parameter 'symbols'; legal range is "
                f"'{_SYMBOLS_RANGE}'.",
                headers,
            )
        if any(s not in known for s in symbols):
            return error(-1121, "Invalid symbol.", headers)
    else:
        symbols = sorted(known)
        headers = weight(request, _ticker_weight(None))
    now = sim.now_ns()

    def rows() -> list[dict]:
        return [ticker_24hr_row(sim, s, known[s], now) for s in symbols]

    return json_response(await _in_thread(rows), headers=headers)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/stocks/snapshots", stock_snapshots)
    r.add_get("/v2/stocks/{symbol}/snapshot", stock_snapshots)
    r.add_get("/v1beta3/crypto/us/snapshots", crypto_snapshots)
    r.add_get("/api/v3/ticker/24hr", ticker_24hr)
