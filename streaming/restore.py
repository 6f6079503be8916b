"""What a newly subscribed instrument continues from.

`subscription_contexts` loads, for instruments the stream worker starts to
stream, what a restarted worker continues from: the stored snapshot (its
`seq` keeps increasing), the session figures from stored bars, and where its
restart gap would start (the minute after the last stored bar; the gap
tracker measures it against the first event, whose clock is the feed's); a
forming minute the previous run stored at shutdown is deleted so the backfill
can store the provider's complete bar. Redis being
away does not stop a subscription: it only loses the snapshot's seq and
defers the partial minutes. Runs on the worker's database thread.
"""

from __future__ import annotations

from datetime import UTC, datetime

from marketdata.selectors import bar_last_minute_ts, bars_session_figures
from marketdata.services import bar_live_minute_discard
from streaming import services
from streaming.aggregator import MINUTE
from streaming.snapshots import snapshots_get_safe
from streaming.state import day_bounds


def subscription_contexts(*, rows: list[dict], now: float) -> dict[str, dict]:
    """Per symbol: {"snapshot", "session", "gap_start"} (database and Redis)."""
    at = datetime.fromtimestamp(now, UTC)
    symbols = [r["symbol"] for r in rows]
    # Redis away: start without the stored snapshot (seq restarts, which a
    # client's `snapshot` frame resets) and leave partial minutes for later.
    snapshots = snapshots_get_safe(symbols=symbols) or {}
    partial = services.partial_bars_take_safe(symbols=symbols)
    contexts = {}
    for row in rows:
        symbol = row["symbol"]
        if symbol in partial:
            bar_live_minute_discard(instrument_id=row["id"], ts=partial[symbol])
        day_start, day_end = day_bounds(row["asset_class"], at)
        session = bars_session_figures(
            instrument_id=row["id"], day_start=day_start, day_end=day_end
        )
        last_ts = bar_last_minute_ts(instrument_id=row["id"])
        gap_start = None if last_ts is None else last_ts + MINUTE
        contexts[symbol] = {
            "snapshot": snapshots.get(symbol),
            "session": session,
            "gap_start": gap_start,
        }
    return contexts
