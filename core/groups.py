"""Channel-layer group names, built only here: one group per symbol and per
user, the feed-status group and the staff group.

Channels allows only ASCII letters, digits, `-`, `_` and `.` in group names,
under 100 characters, so `BTC/USD` becomes `sym.BTC-USD`: `/` maps to `-`, `.`
stays (`BRK.B` -> `sym.BRK.B`), and a literal `-` becomes `_` (`BF-B` ->
`sym.BF_B`), so `BF-B` and `BF/B` get different groups.
"""

from __future__ import annotations

SYMBOL_PREFIX = "sym."
USER_PREFIX = "user."
STATUS_GROUP = "feed.status"
# Staff users' sockets: ops alerts from the feed monitor (streaming.monitor).
STAFF_GROUP = "staff"


def symbol_group(symbol: str) -> str:
    return SYMBOL_PREFIX + symbol.replace("-", "_").replace("/", "-")


def user_group(user_id: int) -> str:
    return f"{USER_PREFIX}{int(user_id)}"
