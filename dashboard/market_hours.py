"""What the pages say about market hours: which markets trade now and why the
others do not ("US equities and ETFs: pre-market until 09:30 New York";
"Crypto: trades 24/7").

Judged the way the stream worker judges a row's freshness
(`streaming.watchdog.market_open`), so a row marked closed never moves:

* on the market clock: the wall clock, unless the stream workers report a feed
  clock running ahead of it (a simulator started with `--clock-start`); the
  page then says "simulated market time";
* for equities and ETFs on the extended session (04:00-20:00 New York) when
  the first equity provider serves pre- and post-market, else the regular one;
  crypto trades around the clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.conf import settings

from marketdata import calendar
from marketdata.providers import serves_extended_hours

#: a feed clock this far ahead of the wall clock is a simulated one
SIMULATED_AHEAD_S = 60.0


def market_clock() -> tuple[datetime, bool]:
    """(now on the market clock, whether it is a simulated clock)."""
    from streaming.selectors import feed_status_get_safe

    wall = time.time()
    ahead = 0.0
    for worker in feed_status_get_safe().get("workers", []):
        clock = worker.get("market_clock")
        if worker.get("alive") and clock is not None:
            ahead = max(ahead, float(clock) - float(worker.get("reported_at") or 0))
    if ahead > SIMULATED_AHEAD_S:
        return datetime.fromtimestamp(wall + ahead, UTC), True
    return datetime.fromtimestamp(wall, UTC), False


def equities_extended() -> bool:
    return serves_extended_hours(settings.TAPELINE_PROVIDER)


def _ny(at: datetime, fmt: str = "%H:%M") -> str:
    return at.astimezone(calendar.NEW_YORK).strftime(fmt)


def _next_open(at: datetime, extended: bool) -> datetime:
    day = at.astimezone(calendar.NEW_YORK).date()
    for offset in range(15):
        session = calendar.nyse_session(day + timedelta(days=offset), extended=extended)
        if session is not None and session.open > at:
            return session.open
    raise ValueError("no session within 15 days")  # pragma: no cover


def equity_hours(at: datetime, *, extended: bool) -> dict:
    """{"open": bool, "phase": "regular"|"pre-market"|"after-hours"|"closed",
    "text": "..."} for US equities and ETFs at `at`."""
    day = at.astimezone(calendar.NEW_YORK).date()
    regular = calendar.nyse_session(day)
    longer = calendar.nyse_session(day, extended=True) if extended else regular
    early = " (early close)" if regular is not None and regular.early_close else ""
    if regular is not None and regular.open <= at < regular.close:
        return {
            "open": True,
            "phase": "regular",
            "text": f"regular session until {_ny(regular.close)} New York{early}",
        }
    if longer is not None and longer.open <= at < regular.open:
        return {
            "open": True,
            "phase": "pre-market",
            "text": f"pre-market until {_ny(regular.open)} New York "
            f"(regular session from {_ny(regular.open)})",
        }
    if longer is not None and regular.close <= at < longer.close:
        return {
            "open": True,
            "phase": "after-hours",
            "text": f"after-hours until {_ny(longer.close)} New York{early}",
        }
    if day.weekday() >= 5:
        why = "weekend"
    elif calendar.nyse_is_holiday(day):
        why = "exchange holiday"
    elif longer is not None and at < longer.open:
        why = "overnight"
    else:
        why = "after the close"
    opens = _next_open(at, extended)
    what = "pre-market opens" if extended else "opens"
    return {
        "open": False,
        "phase": "closed",
        "text": f"closed ({why}); rows show the last session's prices; "
        f"{what} {_ny(opens, '%a %H:%M')} New York",
    }


def instrument_hours(asset_class: str, at: datetime) -> dict:
    """What the instrument page says about its market."""
    if asset_class in calendar.ALWAYS_OPEN_CLASSES:
        return {"open": True, "phase": "always", "text": "Market open · trades 24/7"}
    hours = equity_hours(at, extended=equities_extended())
    state = "Market open" if hours["open"] else "Market closed"
    return {**hours, "text": f"{state} · {hours['text']}"}


def market_note(at: datetime, simulated: bool) -> dict:
    """The dashboard's market-state note."""
    equities = equity_hours(at, extended=equities_extended())
    return {
        "equities": equities,
        "equities_text": f"US equities and ETFs: {equities['text']}",
        "crypto_text": "Crypto: trades 24/7",
        "simulated": simulated,
        "clock_text": f"Simulated market time {_ny(at, '%a %H:%M')} New York "
        "(the demo exchange's clock)"
        if simulated
        else "",
    }
