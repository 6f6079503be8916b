"""What one provider connection is subscribed to: the symbol bookkeeping
of `streaming.connection.FeedConnection` (a mixin: it shares the
connection's lock, socket and state).

`desired` is what the worker wants on this connection; `subscribed` what was
sent; `confirmed` what the provider's last acknowledgement listed. A symbol
the provider refused is held: `rejected` (refused for itself, with the
provider's words) or `held_back` (refused for the plan's symbol limit: the
symbol is fine, the plan is full). Neither is sent again until the worker's
plan changes; `limit` learns the plan's real cap from the refusals
(`streaming.budget.LearnedLimit`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from marketdata.events import PLAN_LIMIT, Control
from streaming.budget import LearnedLimit

logger = logging.getLogger(__name__)
LIVE = "live"  # streaming.connection.State.LIVE (that module imports this one)


class SymbolSubscriptions:
    def _init_symbols(self) -> None:
        self.desired: set[str] = set()
        self.subscribed: set[str] = set()
        self.confirmed: set[str] = set()
        self.rejected: dict[str, str] = {}
        self.held_back: set[str] = set()
        self.limit = LearnedLimit()
        self._last_batch: tuple[str, ...] = ()

    @property
    def last_batch(self) -> tuple[str, ...]:
        """The symbols of the last subscribe request sent."""
        return self._last_batch

    def set_symbols(self, symbols: Iterable[str]) -> tuple[set[str], set[str]]:
        """Make `symbols` the wanted set; (un)subscribe the difference now if
        the session is live (no reconnect). Returns (added, removed)."""
        wanted = set(symbols)
        with self._lock:
            added, removed = wanted - self.desired, self.desired - wanted
            self.desired = wanted
            for symbol in removed:
                self.rejected.pop(symbol, None)
            # The worker's plan is the authority: what a plan limit held back
            # may be asked for again (the budget probes the real limit).
            self.held_back.clear()
            if self.state == LIVE:
                self._sync_subscriptions()
        return added, removed

    def _sync_subscriptions(self) -> None:
        """Send the difference between wanted and subscribed (lock held)."""
        ws = self._ws
        if ws is None:
            return
        wanted = self.desired - set(self.rejected) - self.held_back
        add = sorted(wanted - self.subscribed)
        drop = sorted(self.subscribed - wanted)
        try:
            if drop:
                for message in self.provider.unsubscribe_messages(drop):
                    ws.send(message)
                self.subscribed.difference_update(drop)
                self.stats.unsubscribes += len(drop)
            if add:
                for message in self.provider.subscribe_messages(add):
                    ws.send(message)
                self.subscribed.update(add)
                self._last_batch = tuple(add)
                self.stats.subscribes += len(add)
        except Exception as exc:  # the session's reader sees the drop
            self.last_error = f"send failed: {exc}"
            self._shutdown_socket()

    def on_rejected(self, event: Control) -> tuple[str, ...]:
        """A provider's SUBSCRIPTION_ERROR (the session's answer to
        one; returns the symbols it holds back). For the plan's symbol limit the symbols are
        held back and the limit learned (Alpaca and Binance refuse the whole
        request; Finnhub answers each subscribe over the limit with one
        error, in order, so the refused ones are the batch's tail). Any other
        refusal holds the named symbols back on this connection."""
        message = event.message or "rejected by the provider"
        if event.code:
            message = f"{message} ({event.code})"
        with self._lock:
            if getattr(event, "reason", "") == PLAN_LIMIT:
                refused = self._plan_limit_refused(event)
                self.held_back.update(refused)
            else:
                refused = tuple(event.symbols or self._last_batch)
                for symbol in refused:
                    self.rejected[symbol] = message
            self.subscribed.difference_update(refused)
        if refused and getattr(event, "reason", "") != PLAN_LIMIT:
            logger.warning(
                "%s: provider rejected %s: %s", self.key, ", ".join(refused), message
            )
        return refused

    def _plan_limit_refused(self, event: Control) -> tuple[str, ...]:
        batch = self._last_batch
        if event.symbols:
            refused = tuple(event.symbols)
        elif getattr(self.provider, "plan_limit_per_message", False):
            # One error per refused subscribe: the k-th error refuses the
            # k-th symbol from the end of the batch still subscribed (a new
            # plan between two errors may already have dropped the first
            # refused ones, and clears `held_back`).
            pending = [s for s in batch if s in self.subscribed]
            refused = tuple(pending[-1:])
        else:
            refused = batch
        before = len(self.subscribed - set(refused))
        if getattr(self.provider, "plan_limit_per_message", False):
            self.limit.accepted(before)
            self.limit.refused(before + 1)
        else:
            self.limit.refused(before + len(refused))
        return refused
