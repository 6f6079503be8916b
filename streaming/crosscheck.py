"""Cross-source check: each streamed instrument's live price against another
provider of its list, to catch a bad tick or a stale source.

Every `STREAM_CROSSCHECK_EVERY` seconds (60), for instruments whose asset
class lists more than one provider, the worker asks the next healthy
provider of the list for a snapshot (`Provider.fetch_snapshots`, on the
cold-start threads, at most `per_round` instruments per provider and round,
in turn, so Finnhub's one-request-per-symbol free plan is not drained) and
compares its last trade with the state's. A difference above
`STREAM_DIVERGENCE_PCT` (1 %) is a *divergence*, judged by the trade times:

- the other provider's last trade is older than ours by more than
  `STREAM_STALE_AFTER`: "<other> looks stale";
- ours is older by as much: "<ours> looks stale" (our source);
- otherwise: "prices differ: a bad tick on one side".

Divergences are logged once when they start and when they end, shown on the
status page and counted in `/metrics` (`tapeline_stream_divergence_percent`).
They change nothing else: failover follows health, not prices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

from django.conf import settings

from marketdata.providers.routing import symbol_namespace

logger = logging.getLogger(__name__)
HUNDRED = Decimal(100)


def divergence(ours: Decimal | None, theirs: Decimal | None) -> Decimal | None:
    """Percent difference of two prices (None when one is unknown)."""
    if ours is None or theirs is None or not theirs:
        return None
    return abs(ours - theirs) / theirs * HUNDRED


class CrossCheck:
    def __init__(
        self,
        worker,
        *,
        every: float | None = None,
        threshold_pct: float | None = None,
        per_round: int = 20,
    ) -> None:
        self.worker = worker
        self.every = settings.STREAM_CROSSCHECK_EVERY if every is None else every
        self.threshold = Decimal(
            str(
                settings.STREAM_DIVERGENCE_PCT
                if threshold_pct is None
                else threshold_pct
            )
        )
        self.per_round = per_round
        self.divergent: dict[str, dict] = {}
        self.checked = 0
        self._cursor: dict[str, int] = {}
        self._last = 0.0
        self._task: asyncio.Task | None = None

    async def step(self) -> bool:
        w = self.worker
        now = time.monotonic()
        if self.every <= 0 or now - self._last < self.every:
            return not w.shutdown
        if self._task is not None and not self._task.done():
            return not w.shutdown
        self._last = now
        self._task = asyncio.create_task(self.round())
        return not w.shutdown

    def pairs(self) -> dict[str, list[str]]:
        """Other provider -> the streamed symbols it should check."""
        w = self.worker
        router = w.subscriptions.router
        now = time.time()
        wanted: dict[str, list[str]] = {}
        for symbol, connection in w.routes.items():
            state = w.states.get(symbol)
            if state is None:
                continue
            others = [
                name
                for name in router.usable(state.asset_class, now)
                if name != connection.provider_name
            ]
            if others:
                wanted.setdefault(others[0], []).append(symbol)
        return wanted

    async def round(self) -> None:
        w = self.worker
        for name, symbols in self.pairs().items():
            client = w.coldstart._client(name)
            if client is None:
                continue
            symbols.sort()
            start = self._cursor.get(name, 0) % len(symbols)
            batch = (symbols[start:] + symbols[:start])[: self.per_round]
            self._cursor[name] = start + len(batch)
            namespace = symbol_namespace(name)
            for symbol in batch:
                row = w.instrument_rows.get(symbol) or {}
                client.map_symbol(
                    symbol, (row.get("provider_symbols") or {}).get(namespace)
                )
            found = {}
            for i in range(0, len(batch), max(1, client.snapshot_batch)):
                part = batch[i : i + max(1, client.snapshot_batch)]
                try:
                    found.update(
                        await w.loop.run_in_executor(
                            w.coldstart._pool, client.fetch_snapshots, part
                        )
                    )
                except Exception as exc:  # tried again next round
                    w.problems.warning(
                        f"crosscheck:{name}",
                        "cross-check against %s failed",
                        name,
                        exc=exc,
                    )
                    break
                w.problems.recovered(
                    f"crosscheck:{name}", "cross-check against %s works again", name
                )
            for symbol in batch:
                if symbol in found:
                    self.compare(symbol, name, found[symbol])

    def compare(self, symbol: str, other: str, snap) -> None:
        w = self.worker
        state = w.states.get(symbol)
        if state is None or snap.last is None:
            return
        self.checked += 1
        ours_ts = state.last_trade_ts or state.ts
        pct = divergence(state.last, snap.last)
        if pct is None or pct <= self.threshold:
            if self.divergent.pop(symbol, None) is not None:
                logger.info("%s: prices agree again with %s", symbol, other)
            return
        stale_after = w.options.stale_after
        verdict = "prices differ: a bad tick on one side"
        if ours_ts is not None and snap.last_ts is not None:
            lag = (ours_ts - snap.last_ts).total_seconds()
            if lag > stale_after:
                verdict = f"{other} looks stale (its last trade is {lag:.0f} s older)"
            elif -lag > stale_after:
                verdict = (
                    f"{state.provider} looks stale "
                    f"(its last trade is {-lag:.0f} s older)"
                )
        entry = {
            "symbol": symbol,
            "percent": float(round(pct, 4)),
            "ours": {
                "provider": state.provider,
                "price": str(state.last),
                "ts": ours_ts.isoformat() if ours_ts else None,
            },
            "theirs": {
                "provider": other,
                "price": str(snap.last),
                "ts": snap.last_ts.isoformat() if snap.last_ts else None,
            },
            "verdict": verdict,
            "since": self.divergent.get(symbol, {}).get("since") or time.time(),
        }
        if symbol not in self.divergent:
            logger.warning(
                "%s: %s %s vs %s %s (%.2f %%): %s",
                symbol,
                state.provider,
                state.last,
                other,
                snap.last,
                pct,
                verdict,
            )
        self.divergent[symbol] = entry

    def document(self) -> dict:
        return {"checked": self.checked, "divergent": list(self.divergent.values())}
