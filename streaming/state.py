"""Live state of one instrument in the stream worker: what its snapshot shows.

`InstrumentState.document()` builds the snapshot document described in
`streaming.snapshots` (stored in Redis and published as `market.update`).
Session figures (open/high/low/volume) restart when an event falls into a new
trading day (New York date for equities, UTC date for 24/7 markets); the
previous close then becomes the last price of the day that ended.

The quote in force may be held in wire values (`streaming.quote_runs`):
`wire` is `(quote_ts in µs, bid as sent, ask as sent)` and `unconverted`
the quote whose prices and sizes, with the time it was applied, are not
converted yet (or `(None, None)` when only `quote_ts` is). Most quotes are
superseded before a document shows them, so `quote_ts`, `bid`, `bid_size`,
`ask`, `ask_size` and `ts` convert on first read (the conversions
`Quote` would have used, with the same outcome as `apply_quote` on each
quote in turn). Setting `quote_ts`, `bid` or `ask` another way ends `wire`.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from operator import attrgetter

from marketdata.calendar import ALWAYS_OPEN_CLASSES, NEW_YORK
from marketdata.providers.timeparse import from_epoch_us, price_to_decimal, to_decimal

HUNDRED = Decimal(100)
PCT = Decimal("0.0001")
CHANGE = Decimal("0.00000001")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def day_bounds(asset_class: str, ts: datetime) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the calendar day `ts` falls in for this market."""
    zone = NEW_YORK if asset_class not in ALWAYS_OPEN_CLASSES else ts.tzinfo
    local = ts.astimezone(zone)
    start = datetime.combine(local.date(), time(0), zone)
    end = datetime.combine(local.date() + timedelta(days=1), time(0), zone)
    return start, end


class InstrumentState:
    __slots__ = (
        "symbol", "instrument_id", "asset_class", "provider", "seq", "_ts",
        "received_at", "last", "last_size", "last_trade_ts", "_bid", "_bid_size",
        "_ask", "_ask_size", "open", "high", "low", "volume", "prev_close",
        "day_start", "day_end", "daily_from_provider", "halted", "halt_reason",
        "freshness", "last_event_at", "subscribed_at", "recent_ids", "recent_order",
        "minute", "first_event_pending", "gap_start", "_quote_ts", "reconciled_until",
        "unsubscribed", "suspect", "wire", "unconverted", "_change", "_minute",
        "__weakref__",  # streaming.publisher.Publisher.known
    )  # fmt: skip

    def __init__(
        self, *, symbol: str, instrument_id: int, asset_class: str, provider: str
    ) -> None:
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.asset_class = asset_class
        self.provider = provider
        self.seq = 0
        self._ts: datetime | None = None
        self.received_at: float | None = None
        self.last = self.last_size = None
        self.last_trade_ts: datetime | None = None
        self._bid = self._bid_size = self._ask = self._ask_size = None
        self._quote_ts: datetime | None = None
        self.wire = None  # the quote in force in wire values (see the module)
        self.unconverted = None  # (quote, applied at in µs), not converted yet
        self.open = self.high = self.low = None
        self.volume = Decimal(0)
        self.prev_close: Decimal | None = None
        self.day_start: datetime | None = None
        self.day_end: datetime | None = None
        self.daily_from_provider = False
        self.halted = False
        self.halt_reason = ""
        self.freshness = "live"
        self.unsubscribed = ""  # why it is not streamed (streaming.budget)
        self.last_event_at: float | None = None
        self.subscribed_at: float | None = None
        self.recent_ids: set[str] = set()
        self.recent_order: list[str] = []
        self.minute = None  # the forming MinuteBar, set by the worker
        self.suspect = None  # its streaming.suspect.SuspectFilter, set by the worker
        self._change: tuple | None = None  # document(): last, prev, their texts
        self._minute: tuple | None = None  # document(): the minute and its text
        self.first_event_pending = True  # see StreamWorker._first_event
        # minutes before this one are reconciled (streaming.ledger)
        self.reconciled_until: datetime | None = None
        self.gap_start: datetime | None = (
            None  # restart gap: minutes since the last stored bar
        )

    # --- restoring --------------------------------------------------------------------
    def restore(self, *, snapshot: dict | None, session: dict | None) -> None:
        """Continue from the stored snapshot (seq keeps increasing) and the
        session figures stored bars give
        (`marketdata.selectors.bars_session_figures`)."""
        if snapshot:
            self.seq = int(snapshot.get("seq") or 0)
            for name in ("last", "bid", "bid_size", "ask", "ask_size", "last_size"):
                value = snapshot.get(name)
                if value is not None:
                    setattr(self, name, Decimal(value))
        if session:
            self.day_start = session["day_start"]
            self.day_end = session["day_end"]
            self.prev_close = session.get("prev_close")
            self.open = session.get("open")
            self.high = session.get("high")
            self.low = session.get("low")
            self.volume = session.get("volume") or Decimal(0)
            if session.get("last") is not None and self.last is None:
                self.last = session["last"]

    # --- events -----------------------------------------------------------------------
    def roll_day(self, ts: datetime) -> None:
        if self.day_end is not None and self.last is not None:
            self.prev_close = self.last
        self.day_start, self.day_end = day_bounds(self.asset_class, ts)
        self.open = self.high = self.low = None
        self.volume = Decimal(0)
        self.daily_from_provider = False

    def is_duplicate(self, trade_id: str) -> bool:
        if trade_id in self.recent_ids:
            return True
        self.recent_ids.add(trade_id)
        self.recent_order.append(trade_id)
        if len(self.recent_order) > 512:
            for old in self.recent_order[:256]:
                self.recent_ids.discard(old)
            del self.recent_order[:256]
        return False

    def apply_trade(self, ts: datetime, price: Decimal, size: Decimal) -> bool:
        """Update from a trade; returns False when it is older than the last
        trade (counted as out of order; session figures still include it)."""
        if self.day_end is None or ts >= self.day_end:
            self.roll_day(ts)
        in_order = self.last_trade_ts is None or ts >= self.last_trade_ts
        if in_order:
            self.last = price
            self.last_size = size
            self.last_trade_ts = ts
            self.ts = ts
        if not self.daily_from_provider:
            if self.open is None:
                self.open = self.high = self.low = price
            elif price > self.high:
                self.high = price
            elif price < self.low:
                self.low = price
            self.volume += size
        return in_order

    def apply_quote(
        self,
        ts: datetime,
        bid: Decimal,
        bid_size: Decimal,
        ask: Decimal,
        ask_size: Decimal,
    ) -> bool | None:
        """True when applied; False (nothing to publish) when bid and ask did
        not change; None when older than the quote already applied."""
        if self.unconverted is not None:
            self.convert()
        if self._quote_ts is not None and ts < self._quote_ts:
            return None
        self._quote_ts = ts
        self.wire = None
        if bid == self._bid and ask == self._ask:
            return False
        self._bid, self._bid_size = bid, bid_size
        self._ask, self._ask_size = ask, ask_size
        if self._ts is None or ts > self._ts:
            self._ts = ts
        return True

    def convert(self) -> None:
        """Convert the quote held in wire values (see the module)."""
        quote, applied = self.unconverted
        self.unconverted = None
        newest, bid, ask = self.wire
        quote_ts = self._quote_ts = from_epoch_us(newest)
        if quote is None:
            return
        self._bid = price_to_decimal(bid)
        self._bid_size = to_decimal(quote.bs)
        self._ask = price_to_decimal(ask)
        self._ask_size = to_decimal(quote.as_)
        ts = quote_ts if applied == newest else from_epoch_us(applied)
        if self._ts is None or ts > self._ts:
            self._ts = ts

    def apply_daily_bar(self, ts: datetime, open_, high, low, close, volume) -> None:
        """A provider's running daily bar is the authority for the session."""
        if self.day_end is None or ts >= self.day_end:
            self.roll_day(ts)
        if ts < self.day_start:
            # The previous session's final daily bar: its close is prev_close.
            self.prev_close = close
            return
        self.daily_from_provider = True
        self.open, self.high, self.low, self.volume = open_, high, low, volume
        if self.last is None:
            self.last = close

    # --- output -----------------------------------------------------------------------
    def document(self) -> dict:
        """The snapshot document. What did not change since the last one is
        reused (compared by identity: Decimals are immutable, and an equal
        value with other digits, 1.0 vs 1.00, still gets its own text)."""
        if self.unconverted is not None:
            self.convert()
        last, prev = self.last, self.prev_close
        change = change_pct = None
        if last is not None and prev:
            cached = self._change
            if cached is not None and cached[0] is last and cached[1] is prev:
                change, change_pct = cached[2], cached[3]
            else:
                diff = last - prev
                change = str(diff.quantize(CHANGE).normalize())
                change_pct = str((diff / prev * HUNDRED).quantize(PCT))
                self._change = (last, prev, change, change_pct)
        minute = self.minute
        minute_doc = None
        if minute is not None:
            cached = self._minute
            if (
                cached is not None
                and cached[0] is minute
                and cached[1] is minute.close
                and cached[2] is minute.high
                and cached[3] is minute.low
                and cached[4] is minute.volume
            ):
                minute_doc = cached[5]
            else:
                minute_doc = minute.as_document()
                self._minute = (
                    minute, minute.close, minute.high, minute.low, minute.volume,
                    minute_doc,
                )  # fmt: skip
        ts = self._ts
        size, bid, bid_size = self.last_size, self._bid, self._bid_size
        ask, ask_size, open_ = self._ask, self._ask_size, self.open
        high, low = self.high, self.low
        return {
            "symbol": self.symbol,
            "seq": self.seq,
            "ts": None if ts is None else ts.isoformat(),
            "received_at": self.received_at,
            "provider": self.provider,
            "last": None if last is None else str(last),
            "last_size": None if size is None else str(size),
            "bid": None if bid is None else str(bid),
            "bid_size": None if bid_size is None else str(bid_size),
            "ask": None if ask is None else str(ask),
            "ask_size": None if ask_size is None else str(ask_size),
            "open": None if open_ is None else str(open_),
            "high": None if high is None else str(high),
            "low": None if low is None else str(low),
            "volume": None if open_ is None else _text(self.volume),
            "prev_close": None if prev is None else str(prev),
            "change": change,
            "change_pct": change_pct,
            "freshness": self.freshness,
            "halted": self.halted,
            # shared with the previous document while the minute is unchanged:
            # documents are serialized, never modified
            "minute": minute_doc,
        }


def _converted(name: str, *, ends_wire: bool) -> property:
    """A field of the quote in force, converted on first read (see the
    module); setting it another way converts first, so nothing held is lost."""
    slot = "_" + name
    read = attrgetter(slot)

    def get(state: InstrumentState):
        if state.unconverted is not None:
            state.convert()
        return read(state)

    def put(state: InstrumentState, value) -> None:
        if state.unconverted is not None:
            state.convert()
        setattr(state, slot, value)
        if ends_wire:
            state.wire = None

    return property(get, put, doc=f"The instrument's {name}.")


for _name in ("quote_ts", "bid", "ask"):
    setattr(InstrumentState, _name, _converted(_name, ends_wire=True))
for _name in ("bid_size", "ask_size", "ts"):
    setattr(InstrumentState, _name, _converted(_name, ends_wire=False))
