"""The normalized latest state of an instrument (`Snapshot`) and the parsers
that build it from each vendor's latest-state REST answer (providers.md §6).

A worker that starts with no history, or while a market is closed, shows
last, change and change % from these. Where the previous close comes from:

- Alpaca (stocks and crypto, and the simulator): `prevDailyBar.c`, or
  `dailyBar.c` when `dailyBar` is older than the day of `latestTrade` (a
  pre-market trade before the regular session's first bar). The rule is "the
  close of the newest daily bar of a day before the latest trade's day", day =
  New York date for stocks (Alpaca's daily bars are stamped at New York
  midnight; their close is the regular-session close), UTC date for crypto
  (Alpaca's crypto daily bars are UTC days). It matches how
  `streaming.state.day_bounds` cuts days.
- Finnhub: `/quote` `pc` as given (the previous regular-session close for
  stocks); the day figures are `o`/`h`/`l` of the quote's day.
- Binance: `/api/v3/ticker/24hr` is a rolling 24-hour window (its
  `openPrice`/`prevClosePrice` are 24 h old, not a day boundary), so it gives
  only the last price, bid/ask and their sizes; the UTC day comes from the
  documented daily kline (`/api/v3/klines?interval=1d&limit=2`, UTC buckets):
  the forming candle's open/high/low/volume are the day's, the previous
  candle's close (the last price before 00:00 UTC) is the previous close.

Symbols a provider does not know are absent from the result; transport and
rate-limit failures raise `ProviderError` subclasses (after the HTTP client's
own retries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from marketdata.calendar import NEW_YORK
from marketdata.providers.base import (
    InvalidRequestError,
    ProviderError,
    UnknownSymbolError,
)
from marketdata.providers.timeparse import (
    from_epoch_ms,
    from_epoch_seconds,
    parse_rfc3339,
    price_to_decimal,
    to_decimal,
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a provider says about one instrument right now. Any field may
    be None (unknown). `session_ts` is a time inside the day that
    open/high/low/volume describe; `prev_close_ts` the start of the day that
    `prev_close` closed; `prev_close_source` names the vendor field."""

    symbol: str
    provider: str
    last: Decimal | None = None
    last_size: Decimal | None = None
    last_ts: datetime | None = None
    bid: Decimal | None = None
    bid_size: Decimal | None = None
    ask: Decimal | None = None
    ask_size: Decimal | None = None
    quote_ts: datetime | None = None
    session_ts: datetime | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: Decimal | None = None
    prev_close: Decimal | None = None
    prev_close_ts: datetime | None = None
    prev_close_source: str = ""


def _bad(provider: str, what: str, exc: Exception) -> ProviderError:
    return ProviderError(f"{provider}: bad {what}: {exc}", permanent=False)


def _day(ts: datetime, *, crypto: bool) -> date:
    return ts.astimezone(UTC if crypto else NEW_YORK).date()


def alpaca_snapshot(
    symbol: str, body: Any, *, provider: str, crypto: bool
) -> Snapshot | None:
    """One Alpaca snapshot object (stocks or crypto) -> `Snapshot`; None
    when the provider has nothing for the symbol (absent or null)."""
    if not isinstance(body, dict):
        return None
    try:
        return _alpaca(symbol, body, provider=provider, crypto=crypto)
    except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
        raise _bad(provider, f"snapshot of {symbol}", exc) from None


def _alpaca(symbol: str, body: dict, *, provider: str, crypto: bool) -> Snapshot:
    fields: dict[str, Any] = {}
    trade = body.get("latestTrade")
    if isinstance(trade, dict):
        fields.update(
            last=price_to_decimal(trade["p"]),
            last_size=to_decimal(trade["s"]),
            last_ts=parse_rfc3339(trade["t"]),
        )
    quote = body.get("latestQuote")
    if isinstance(quote, dict):
        fields.update(
            bid=price_to_decimal(quote["bp"]),
            bid_size=to_decimal(quote["bs"]),
            ask=price_to_decimal(quote["ap"]),
            ask_size=to_decimal(quote["as"]),
            quote_ts=parse_rfc3339(quote["t"]),
        )
    bars = []  # (day, key, start, bar), oldest first
    for key in ("prevDailyBar", "dailyBar"):
        bar = body.get(key)
        if isinstance(bar, dict):
            ts = parse_rfc3339(bar["t"])
            bars.append((_day(ts, crypto=crypto), key, ts, bar))
    bars.sort(key=lambda item: item[2])
    last_ts = fields.get("last_ts")
    if last_ts is not None:
        trade_day = _day(last_ts, crypto=crypto)
        session = next((b for b in bars if b[0] == trade_day), None)
        previous = next((b for b in reversed(bars) if b[0] < trade_day), None)
    else:
        session = bars[-1] if bars else None
        previous = bars[-2] if len(bars) > 1 else None
    if session is not None:
        _, _, ts, bar = session
        fields.update(
            session_ts=ts,
            open=price_to_decimal(bar["o"]),
            high=price_to_decimal(bar["h"]),
            low=price_to_decimal(bar["l"]),
            volume=to_decimal(bar["v"]),
        )
    elif last_ts is not None:
        fields["session_ts"] = last_ts
    if previous is not None:
        _, key, ts, bar = previous
        fields.update(
            prev_close=price_to_decimal(bar["c"]),
            prev_close_ts=ts,
            prev_close_source=f"{provider} {key}.c",
        )
    return Snapshot(symbol=symbol, provider=provider, **fields)


def finnhub_snapshot(symbol: str, body: Any, *, provider: str) -> Snapshot | None:
    """A Finnhub `/quote` body -> `Snapshot`; None for the all-zero body
    Finnhub sends for a symbol it does not know."""
    if not isinstance(body, dict):
        raise ProviderError(f"{provider}: unexpected /quote response", permanent=False)
    try:
        values = {k: to_decimal(body.get(k) or 0) for k in ("c", "pc", "o", "h", "l")}
        t = body.get("t")
        ts = from_epoch_seconds(t) if t else None
    except (ValueError, TypeError, OverflowError) as exc:
        raise _bad(provider, "/quote response", exc) from None
    if not any(values.values()) and ts is None:
        return None

    def known(key: str) -> Decimal | None:
        return values[key] or None  # Finnhub says 0 for "no value"

    return Snapshot(
        symbol=symbol,
        provider=provider,
        last=known("c"),
        last_ts=ts,
        session_ts=ts,
        open=known("o"),
        high=known("h"),
        low=known("l"),
        prev_close=known("pc"),
        prev_close_source=f"{provider} pc" if known("pc") else "",
    )


def binance_snapshot(
    symbol: str,
    ticker: Any,
    klines: Any,
    *,
    provider: str,
    price: Callable[[Any], Decimal],
    number: Callable[[Any], Decimal],
) -> Snapshot:
    """A Binance ticker/24hr row and the last two daily klines -> `Snapshot`
    (`price` and `number` parse Binance's decimal strings)."""
    try:
        fields: dict[str, Any] = {
            "last": price(ticker["lastPrice"]),
            "last_size": number(ticker["lastQty"]),
            # The ticker has no trade time; its figures are as of closeTime.
            "last_ts": from_epoch_ms(ticker["closeTime"]),
            "quote_ts": from_epoch_ms(ticker["closeTime"]),
            "bid": price(ticker["bidPrice"]),
            "bid_size": number(ticker["bidQty"]),
            "ask": price(ticker["askPrice"]),
            "ask_size": number(ticker["askQty"]),
        }
        if not isinstance(klines, list):
            raise ValueError("klines are not a list")
        if klines:
            today = klines[-1]
            fields.update(
                session_ts=from_epoch_ms(today[0]),
                open=price(today[1]),
                high=price(today[2]),
                low=price(today[3]),
                volume=number(today[5]),
            )
        if len(klines) >= 2:
            previous = klines[-2]
            fields.update(
                prev_close=price(previous[4]),
                prev_close_ts=from_epoch_ms(previous[0]),
                prev_close_source=f"{provider} 1d kline close",
            )
    except (KeyError, IndexError, ValueError, TypeError, ArithmeticError) as exc:
        raise _bad(provider, f"ticker/klines of {symbol}", exc) from None
    return Snapshot(symbol=symbol, provider=provider, **fields)


def snapshots_batched(
    symbols: list[str],
    *,
    size: int,
    fetch: Callable[[list[str]], dict[str, Snapshot]],
) -> dict[str, Snapshot]:
    """`fetch` over chunks of at most `size` symbols. A chunk refused because
    of one of its symbols (unknown: Binance -1121, Alpaca 4xx naming a symbol;
    malformed: Binance -1100) is asked again one symbol at a time, so the
    others still get theirs; the refused ones are absent."""
    out: dict[str, Snapshot] = {}
    for i in range(0, len(symbols), max(1, size)):
        chunk = symbols[i : i + max(1, size)]
        try:
            out.update(fetch(chunk))
        except (UnknownSymbolError, InvalidRequestError):
            if len(chunk) == 1:
                continue
            for symbol in chunk:
                try:
                    out.update(fetch([symbol]))
                except (UnknownSymbolError, InvalidRequestError):
                    continue
    return out
